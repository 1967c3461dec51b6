"""The safe-loading check in front of every model load: an install that cannot load weights safely
is refused with a LoadFailed that says what to upgrade, never an AttributeError (a 500 "unexpected
error") and never a silent full unpickle."""

from __future__ import annotations

import importlib
import json
import types
from pathlib import Path
from typing import Any

import pytest
from overseer_serving import offline
from overseer_serving.detector import LoadedModel
from overseer_serving.document import load_document
from overseer_serving.errors import LoadFailed

DIGEST = "sha256:" + "c" * 64


def desired() -> Any:
    doc = {
        "model": {"name": "m", "version": "1", "uri": "file:///w.pt", "digest": DIGEST},
        "schema": {"name": "s", "version": 1},
    }
    return load_document(json.dumps(doc).encode())


class SafeLoad:
    SUPPORTED = True


def fake_install(
    monkeypatch: pytest.MonkeyPatch, *, tasks: dict[str, Any], torch_has_scan: bool = True, version: str = "8.3.0"
) -> None:
    serialization = types.SimpleNamespace()
    if torch_has_scan:
        serialization.get_unsafe_globals_in_checkpoint = lambda path: []
    modules = {
        "ultralytics": types.SimpleNamespace(__version__=version),
        "ultralytics.nn.tasks": types.SimpleNamespace(**tasks),
        "torch": types.SimpleNamespace(__version__="2.5.1", serialization=serialization),
    }
    real = importlib.import_module
    monkeypatch.setattr(offline.importlib, "import_module", lambda name: modules.get(name) or real(name))


def refusal(monkeypatch: pytest.MonkeyPatch) -> LoadFailed:
    with pytest.raises(LoadFailed) as caught:
        LoadedModel.load(desired(), Path("/nonexistent.pt"), device="cpu")
    assert caught.value.status == 500
    assert caught.value.reason == "unsafe_loader"
    assert caught.value.message.startswith(f"refusing to load {DIGEST}: ")
    return caught.value


def test_ultralytics_without_the_safe_loader_is_a_clear_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_install(monkeypatch, tasks={})  # ultralytics < 8.4.67: no SAFE_LOAD, no _SafeLoad
    error = refusal(monkeypatch)
    assert "Ultralytics 8.3.0 has no restricted checkpoint loader" in error.message
    assert "ultralytics>=8.4.67" in error.message


def test_torch_too_old_for_the_safe_loader_is_a_clear_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_install(monkeypatch, tasks={"SAFE_LOAD": True, "_SafeLoad": SafeLoad}, torch_has_scan=False)
    error = refusal(monkeypatch)
    assert "torch 2.5.1 is too old" in error.message and "torch>=2.6" in error.message


def test_safe_loader_not_active_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_install(monkeypatch, tasks={"SAFE_LOAD": False, "_SafeLoad": SafeLoad})
    assert "not active" in refusal(monkeypatch).message


def test_forced_flag_is_read_as_on_by_the_strictest_ultralytics_parser() -> None:
    # ultralytics 8.4.67 (the floor): SAFE_LOAD = str(os.getenv(...)).lower() == "true"
    assert offline.FORCED["ULTRALYTICS_SAFE_LOAD"].lower() == "true"


def test_serving_extra_floors_match_the_safe_loader_requirements() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["serving"]
    assert f"ultralytics>={offline.MIN_ULTRALYTICS}" in extra
    assert f"torch>={offline.MIN_TORCH}" in extra
