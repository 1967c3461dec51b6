"""The operator's small API client: paths, error mapping, rotating service-account tokens."""

from __future__ import annotations

from pathlib import Path

from overseer.operator.kube import Credentials, KubeError, _error, api_path, object_path


def test_paths_of_core_and_group_resources() -> None:
    assert api_path("v1", "secrets", "ml", "cat-admin") == "/api/v1/namespaces/ml/secrets/cat-admin"
    assert api_path("apps/v1", "deployments", "ml") == "/apis/apps/v1/namespaces/ml/deployments"
    assert api_path("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", name="so") == (
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/so"
    )
    body = {"metadata": {"name": "cat", "namespace": "ml"}}
    assert object_path("overseer.dev/v1alpha1", "modeldeployments", body, "status") == (
        "/apis/overseer.dev/v1alpha1/namespaces/ml/modeldeployments/cat/status"
    )


def test_errors_keep_the_api_servers_reason_and_say_whether_to_retry() -> None:
    error = _error(422, '{"kind":"Status","reason":"Invalid","message":"spec.replicas: must be >= 0"}')
    assert (error.status, error.reason, error.message) == (422, "Invalid", "spec.replicas: must be >= 0")
    assert not error.transient
    assert _error(503, "upstream connect error").transient
    assert _error(409, "{}").transient
    assert KubeError(0, "Unavailable", "refused").transient


def test_a_token_file_is_read_on_every_call(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    credentials = Credentials(server="https://10.0.0.1", token_file=str(token), token="fallback")
    assert credentials.current_token() == "first"
    token.write_text("rotated")
    assert credentials.current_token() == "rotated"
    token.unlink()
    assert credentials.current_token() == "fallback"
