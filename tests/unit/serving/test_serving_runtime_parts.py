"""Settings hand-over to workers, the shared desired-state store, and image decoding limits."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from overseer_serving.errors import BadRequest, PayloadTooLarge
from overseer_serving.imaging import decode_image
from overseer_serving.settings import ServingSettings
from overseer_serving.state import StateStore
from PIL import Image
from pydantic import ValidationError


def test_settings_round_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = ServingSettings(host="127.0.0.5", port=3456, workers=2, state_dir=tmp_path, supervisor_pid=42)
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    assert ServingSettings() == settings
    assert settings.weights_dir == tmp_path / "weights"


def test_default_host_is_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVERSEER_HOST", raising=False)
    assert ServingSettings().host == "127.0.0.1"


@pytest.mark.parametrize("host", ["127.0.0.1", "10.244.1.7", "0.0.0.0", "::1"])
def test_host_accepts_ip_literals(host: str) -> None:
    assert ServingSettings(host=host).host == host


@pytest.mark.parametrize("host", ["localhost", "my-pod.default.svc", "", "127.0.0.1:3000", "300.1.1.1"])
def test_host_refuses_anything_but_an_ip_literal(host: str) -> None:
    with pytest.raises(ValidationError, match=f"must be an IP address literal .*not '{host}'"):
        ServingSettings(host=host)


def test_state_store_generations_and_statuses(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.prepare()
    assert store.read_desired() is None
    assert store.write_desired({"model": 1}) == 1
    with store.swap_lock():
        assert store.write_desired({"model": 2}) == 2
    assert store.read_desired() == (2, {"model": 2})
    store.write_status(2, {"worker": 2, "generation": 2})
    store.write_status(1, {"worker": 1, "generation": 1})
    assert [s["worker"] for s in store.statuses()] == [1, 2]
    assert store.read_fatal() is None
    store.write_fatal("boom")
    assert store.read_fatal() == "boom"


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def test_decode_image_limits() -> None:
    assert decode_image(png(64, 48), max_pixels=10_000).size == (64, 48)
    with pytest.raises(PayloadTooLarge, match="4000x3000 pixels"):
        decode_image(png(4000, 3000), max_pixels=1_000_000)
    with pytest.raises(BadRequest, match="not a decodable image"):
        decode_image(b"this is not an image", max_pixels=1_000_000)
    with pytest.raises(BadRequest, match="empty"):
        decode_image(b"", max_pixels=1_000_000)


def test_offline_settings_are_forced_not_defaulted(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from overseer_serving import offline

    for name in offline.FORCED:  # monkeypatch restores them all afterwards
        monkeypatch.setenv(name, "0")
    offline.apply()
    assert os.environ["ULTRALYTICS_SAFE_LOAD"] == "true"
    assert os.environ["YOLO_OFFLINE"] == "1"
    assert os.environ["YOLO_AUTOINSTALL"] == "false"
