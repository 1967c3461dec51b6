"""The operator's one settings object: OVERSEER_ environment, validated, built once."""

from __future__ import annotations

import pytest
from overseer.operator.settings import OperatorSettings
from pydantic import ValidationError


def test_defaults_serve_every_namespace_through_a_service(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OVERSEER_NAMESPACES", "OVERSEER_WEBHOOK_MODE", "OVERSEER_SERVING_IMAGE"):
        monkeypatch.delenv(name, raising=False)
    settings = OperatorSettings()
    assert settings.namespaces == []
    assert settings.webhook_mode == "service"
    assert settings.webhook_timeout_seconds == 5
    assert settings.admission_check_timeout_s < settings.webhook_timeout_seconds
    assert settings.serving_image.startswith("schema-overseer-serving:")


def test_the_environment_configures_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERSEER_NAMESPACES", "ml-serving, ml-staging,")
    monkeypatch.setenv("OVERSEER_WEBHOOK_MODE", "url")
    monkeypatch.setenv("OVERSEER_SERVING_IMAGE", "registry.example/serving:2")
    monkeypatch.setenv("OVERSEER_PORT", "1234")  # the serving process's setting: ignored here
    settings = OperatorSettings()
    assert settings.namespaces == ["ml-serving", "ml-staging"]
    assert settings.webhook_mode == "url"
    assert settings.serving_image == "registry.example/serving:2"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("webhook_host", "localhost", "must be an IP address literal"),
        ("webhook_timeout_seconds", 30, "less than or equal to 5"),
        ("admission_check_timeout_s", 6, "less than 5"),
        ("webhook_mode", "managed", "'url', 'service' or 'none'"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OperatorSettings(**{field: value})
