"""The webhook configurations (one template for local mode and the chart) and the certificates."""

from __future__ import annotations

import datetime as dt
import re
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from overseer.operator import handlers, webhooks
from overseer.operator.webhooks import WEBHOOKS, configurations, service_client_config, url_client_config

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_every_webhook_is_scoped_short_and_fails_closed() -> None:
    validating, mutating = configurations(url_client_config("127.0.0.1", 9443, "Q0E="))
    assert (validating["kind"], mutating["kind"]) == ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
    entries = validating["webhooks"] + mutating["webhooks"]
    assert sorted(e["name"] for e in entries) == [
        "default-modeldeployment.overseer.dev", "validate-modeldeployment.overseer.dev",
        "validate-modelschema.overseer.dev",
    ]  # fmt: skip
    for entry in entries:
        assert entry["failurePolicy"] == "Fail"
        assert entry["sideEffects"] == "None"
        assert 1 <= entry["timeoutSeconds"] <= 5
        assert entry["admissionReviewVersions"] == ["v1"]
        assert {group for rule in entry["rules"] for group in rule["apiGroups"]} == {"overseer.dev"}
        assert entry["clientConfig"]["caBundle"] == "Q0E="
        handler_id = entry["name"].removesuffix(".overseer.dev")
        assert entry["clientConfig"]["url"] == f"https://127.0.0.1:9443/{handler_id}"
    schema_rules = next(e for e in entries if e["name"].startswith("validate-modelschema"))["rules"]
    assert schema_rules[0]["operations"] == ["CREATE", "UPDATE", "DELETE"]
    with pytest.raises(ValueError, match="timeoutSeconds"):
        configurations(url_client_config("127.0.0.1", 1, ""), timeout_seconds=30)


def test_each_webhook_path_is_a_registered_kopf_handler_id() -> None:
    """Kopf routes /<handler-id> to that handler alone: a path that matches no id matches nothing."""
    registered = {h.id for h in handlers.kopf.get_default_registry()._webhooks.get_all_handlers()}
    assert {w.handler_id for w in WEBHOOKS} == registered


def test_no_handler_adds_a_finalizer() -> None:
    """Deletion must never wait for the operator: no on.delete, timers or daemons."""
    registry = handlers.kopf.get_default_registry()
    assert registry._spawning.get_all_handlers() == []
    reasons = {str(h.reason) for h in registry._changing.get_all_handlers()}
    assert not any("delete" in reason.lower() for reason in reasons), reasons


def _render_helm(template: str, fullname: str, namespace: str, ca_bundle: str) -> list[dict[str, Any]]:
    """A tiny stand-in for `helm template` over the expressions the generated file uses."""
    body = template.split('{{- define "schema-overseer.webhookConfigurations" -}}\n', 1)[1].rsplit("{{- end }}", 1)[0]
    body = re.sub(r"\s*labels: \{\{- include .*? \}\}", "\n  labels: {app: overseer}", body)
    body = re.sub(r"\n\s*\{\{- with \$\.annotations \}\}.*?\{\{- end \}\}", "", body, flags=re.S)
    body = re.sub(r"\n\s*\{\{- with \$\.namespaceSelector \}\}.*?\{\{- end \}\}", "", body, flags=re.S)
    # `{{-` trims the whitespace before it, newline included.
    with_ca = r"\n\s*\{\{- with \$\.caBundle \}\}\n(\s*)caBundle: \{\{ \. \}\}\n\s*\{\{- end \}\}"
    body = re.sub(with_ca, rf"\n\1caBundle: {ca_bundle}", body)
    body = body.replace('{{ include "schema-overseer.fullname" $.root }}', fullname)
    body = body.replace("{{ $.root.Release.Namespace }}", namespace)
    assert "{{" not in body, body
    return list(yaml.safe_load_all(body))


def test_the_chart_template_renders_the_same_configurations_with_a_service() -> None:
    template = webhooks.chart_template()
    rendered = _render_helm(template, "so", "overseer-system", "Q0E=")
    expected = configurations(service_client_config("so-webhook", "overseer-system", "Q0E="), name="so",
                              labels={"app": "overseer"})  # fmt: skip
    assert rendered == expected


def test_the_committed_chart_template_is_up_to_date() -> None:
    assert (REPO_ROOT / webhooks.CHART_TEMPLATE).read_text(encoding="utf-8") == webhooks.chart_template()


def test_certificates_are_made_once_and_trusted_for_the_ip(tmp_path: Path) -> None:
    files = webhooks.ensure_certificates(tmp_path, ip_sans=["127.0.0.1"])
    leaf = x509.load_pem_x509_certificate(files.cert.read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert files.key.stat().st_mode & 0o777 == 0o600
    # A TLS server with these files is trusted by a client that trusts the CA, for that IP.
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(files.cert, files.key)
    client = ssl.create_default_context(cafile=str(files.ca))
    assert client.cert_store_stats()["x509_ca"] == 1
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(files.ca.read_bytes()))

    before = files.ca.read_bytes()
    assert webhooks.ensure_certificates(tmp_path, ip_sans=["127.0.0.1"]).ca.read_bytes() == before  # reused
    webhooks.ensure_certificates(tmp_path, ip_sans=["127.0.0.2"])  # another address: new ones
    assert files.ca.read_bytes() != before


def test_certificates_close_to_expiry_are_replaced(tmp_path: Path) -> None:
    files = webhooks.ensure_certificates(tmp_path, ip_sans=["127.0.0.1"])
    before = files.cert.read_bytes()
    again = webhooks.ensure_certificates(tmp_path, ip_sans=["127.0.0.1"], min_remaining=dt.timedelta(days=100))
    assert again.cert.read_bytes() != before
