"""The swap protocol of `Runtime`, with the model loader replaced by a fake (no torch, no server)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from overseer_serving import runtime as runtime_module
from overseer_serving.document import Desired
from overseer_serving.errors import DigestMismatch, InvalidConfig, LoadFailed
from overseer_serving.runtime import Runtime
from overseer_serving.settings import ServingSettings
from overseer_serving.state import StateStore


class FakeModel:
    loads: list[str] = []
    fail_digests: set[str] = set()

    def __init__(self, desired: Desired) -> None:
        self.desired = desired

    @classmethod
    def load(cls, desired: Desired, weights: Path, *, device: str) -> FakeModel:
        cls.loads.append(desired.digest)
        if desired.digest in cls.fail_digests:
            raise LoadFailed("weights did not load: boom")
        return cls(desired)


class FakeMetrics:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.swaps = self
        self.swap_seconds = self
        self.swap_failures = self

    def labels(self, *values: str) -> FakeMetrics:
        self._last = values
        return self

    def inc(self) -> None:
        if self._last and self._last[0] in {"digest_mismatch", "invalid_config", "load_failed"}:
            self.failures.append(self._last[0])

    def observe(self, seconds: float) -> None:
        pass

    def serving(self, new: dict[str, str], old: dict[str, str] | None) -> None:
        pass


def doc(digest_char: str, conf: float = 0.3) -> dict[str, Any]:
    return {
        "model": {
            "name": "m",
            "version": digest_char,
            "uri": "file:///w.pt",
            "digest": "sha256:" + digest_char * 64,
            "customObjects": {"conf": conf},
        },
        "schema": {"name": "s", "version": 1, "customObjects": {"type": "object"}},
    }


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    FakeModel.loads, FakeModel.fail_digests = [], set()
    monkeypatch.setattr(runtime_module, "LoadedModel", FakeModel)
    monkeypatch.setattr(runtime_module, "fetch", lambda uri, digest, *a, **k: Path("/cache") / digest)
    store = StateStore(tmp_path)
    store.prepare()
    store.write_desired(doc("a"))
    rt = Runtime(ServingSettings(state_dir=tmp_path), store, FakeMetrics(), worker=1)  # type: ignore[arg-type]
    rt.start()
    return rt


def put(rt: Runtime, document: dict[str, Any]) -> dict[str, Any]:
    return rt.put(json.dumps(document).encode(), "application/json")


def test_swap_switches_and_publishes_the_next_generation(runtime: Runtime) -> None:
    assert runtime.ready and runtime.model().desired.version == "a"
    answer = put(runtime, doc("b"))
    assert answer["changed"] is True and answer["previous"]["version"] == "a"
    assert runtime.model().desired.version == "b"
    assert runtime.store.read_desired() is not None and runtime.store.desired_generation() == 2
    assert runtime.store.statuses()[0]["model"]["version"] == "b"


def test_same_document_is_a_no_op_but_a_config_change_is_not(runtime: Runtime) -> None:
    assert put(runtime, doc("a"))["changed"] is False
    assert FakeModel.loads == ["sha256:" + "a" * 64]
    assert put(runtime, doc("a", conf=0.6))["changed"] is True
    assert runtime.model().desired.params.conf == 0.6


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ({**doc("c"), "model": {**doc("c")["model"], "customObjects": {"conf": 9}}}, InvalidConfig),
        ("fail", LoadFailed),
    ],
)
def test_failures_keep_the_old_model(runtime: Runtime, document: Any, error: type[Exception]) -> None:
    if document == "fail":
        FakeModel.fail_digests.add("sha256:" + "d" * 64)
        document = doc("d")
    with pytest.raises(error):
        put(runtime, document)
    assert runtime.model().desired.version == "a"
    assert runtime.store.desired_generation() == 1


def test_digest_mismatch_from_fetch_keeps_the_old_model(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    def mismatch(*args: Any, **kwargs: Any) -> Path:
        raise DigestMismatch("digest mismatch")

    monkeypatch.setattr(runtime_module, "fetch", mismatch)
    with pytest.raises(DigestMismatch):
        put(runtime, doc("e"))
    assert runtime.model().desired.version == "a"


def test_concurrent_puts_run_one_at_a_time(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    inside = 0
    most = 0
    guard = threading.Lock()
    original = FakeModel.load.__func__  # type: ignore[attr-defined]

    def slow_load(cls: type[FakeModel], desired: Desired, weights: Path, *, device: str) -> FakeModel:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        threading.Event().wait(0.05)  # widen the window in which a second swap could overlap
        with guard:
            inside -= 1
        return original(cls, desired, weights, device=device)  # type: ignore[no-any-return]

    monkeypatch.setattr(FakeModel, "load", classmethod(slow_load))
    threads = [threading.Thread(target=put, args=(runtime, doc(c))) for c in "bcdef"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert most == 1
    assert runtime.store.desired_generation() == 6
