"""The swap protocol of `Runtime`, with the model loader replaced by a fake (no torch, no server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from overseer_serving import runtime as runtime_module
from overseer_serving.document import Desired
from overseer_serving.errors import DigestMismatch, FetchFailed, FollowFailed, InvalidConfig, LoadFailed
from overseer_serving.runtime import Runtime
from overseer_serving.settings import ServingSettings
from overseer_serving.state import StateStore
from support.polling import wait_for


class FakeModel:
    loads: list[str] = []
    fail_digests: set[str] = set()
    # digest -> exception for loads in one worker's follower thread ("overseer-follower-<n>")
    follower_failures: dict[tuple[int, str], Exception] = {}

    def __init__(self, desired: Desired) -> None:
        self.desired = desired

    @classmethod
    def load(cls, desired: Desired, weights: Path, *, device: str) -> FakeModel:
        cls.loads.append(desired.digest)
        if desired.digest in cls.fail_digests:
            raise LoadFailed("weights did not load: boom")
        thread = threading.current_thread().name
        for (worker, digest), error in cls.follower_failures.items():
            if thread == f"overseer-follower-{worker}" and digest == desired.digest:
                raise error
        return cls(desired)


class Counter:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, ...], int] = {}
        self._labels: tuple[str, ...] = ()

    def labels(self, *values: str) -> Counter:
        counter = Counter()
        counter.counts = self.counts
        counter._labels = values
        return counter

    def inc(self) -> None:
        self.counts[self._labels] = self.counts.get(self._labels, 0) + 1

    def observe(self, seconds: float) -> None:
        self.inc()


class FakeMetrics:
    def __init__(self) -> None:
        self.swaps = Counter()
        self.swap_seconds = Counter()
        self.swap_failures = Counter()

    def failures(self) -> dict[str, int]:
        return {labels[0]: n for labels, n in self.swap_failures.counts.items()}

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


def fake_pod_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StateStore:
    """A pod's state directory desiring model "a", with FakeModel loading and no real fetch."""
    FakeModel.loads, FakeModel.fail_digests, FakeModel.follower_failures = [], set(), {}
    monkeypatch.setattr(runtime_module, "LoadedModel", FakeModel)
    monkeypatch.setattr(runtime_module, "fetch", lambda uri, digest, *a, **k: Path("/cache") / digest)
    store = StateStore(tmp_path)
    store.prepare()
    store.write_desired(doc("a"))
    return store


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    store = fake_pod_state(tmp_path, monkeypatch)
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


class OverlapMeter:
    """Makes FakeModel.load slow and records how many loads ever ran at the same time."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inside = 0
        self.most = 0
        self._guard = threading.Lock()
        original = FakeModel.load.__func__  # type: ignore[attr-defined]
        meter = self

        def slow_load(cls: type[FakeModel], desired: Desired, weights: Path, *, device: str) -> FakeModel:
            with meter._guard:
                meter.inside += 1
                meter.most = max(meter.most, meter.inside)
            threading.Event().wait(0.05)  # widen the window in which a second swap could overlap
            with meter._guard:
                meter.inside -= 1
            return original(cls, desired, weights, device=device)  # type: ignore[no-any-return]

        monkeypatch.setattr(FakeModel, "load", classmethod(slow_load))


def test_concurrent_puts_run_one_at_a_time(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    meter = OverlapMeter(monkeypatch)
    threads = [threading.Thread(target=put, args=(runtime, doc(c))) for c in "bcdef"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert meter.most == 1
    assert runtime.store.desired_generation() == 6


def test_unexpected_errors_are_failed_swaps_counted_by_reason(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cache_broken(*args: Any, **kwargs: Any) -> Path:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(runtime_module, "fetch", cache_broken)
    with pytest.raises(FetchFailed) as caught:
        put(runtime, doc("e"))
    assert (caught.value.status, caught.value.reason) == (500, "fetch_failed")
    assert "PermissionError" in caught.value.message
    monkeypatch.setattr(runtime_module, "fetch", lambda uri, digest, *a, **k: Path("/cache") / digest)
    FakeModel.follower_failures = {}
    monkeypatch.setattr(FakeModel, "load", classmethod(lambda cls, *a, **k: (_ for _ in ()).throw(AttributeError("x"))))
    with pytest.raises(LoadFailed, match="did not load: AttributeError: x"):
        put(runtime, doc("f"))
    assert runtime.metrics.failures() == {"fetch_failed": 1, "load_failed": 1}  # type: ignore[attr-defined]
    assert runtime.model().desired.version == "a"


# --- more than one worker: Runtimes of one pod in one process, sharing the state directory ------


@pytest.fixture
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], list[Runtime]]]:
    started: list[Runtime] = []

    def make(workers: int) -> list[Runtime]:
        store = fake_pod_state(tmp_path, monkeypatch)
        settings = ServingSettings(state_dir=tmp_path, workers=workers, poll_interval_s=0.02, follow_timeout_s=5)
        for n in range(1, workers + 1):
            rt = Runtime(settings, store, FakeMetrics(), worker=n)  # type: ignore[arg-type]
            rt.start()
            started.append(rt)
        return list(started)

    yield make
    for rt in started:
        rt.stop()
    for rt in started:
        if rt._follower is not None:
            rt._follower.join(5)


def served(runtimes: list[Runtime]) -> list[str]:
    return [rt.model().desired.version for rt in runtimes]


def test_a_failed_follower_rolls_the_whole_pod_back(pod: Callable[[int], list[Runtime]]) -> None:
    leader, follower = pod(2)
    FakeModel.follower_failures[(2, "sha256:" + "b" * 64)] = LoadFailed("weights did not load: boom")
    with pytest.raises(FollowFailed) as caught:
        put(leader, doc("b"))
    assert (caught.value.status, caught.value.reason) == (500, "worker_failed")
    assert caught.value.message == (
        "worker 2 could not take generation 2: load_failed: weights did not load: boom; "
        "the pod was rolled back: every worker serves m:a again (generation 3)"
    )
    # The PUT failed, so the old model keeps serving everywhere, and the pod says it is ready on it.
    assert served([leader, follower]) == ["a", "a"]
    assert leader.ready and follower.ready
    assert [(s["worker"], s["generation"], s["state"], s["model"]["version"]) for s in leader.store.statuses()] == [
        (1, 3, "serving", "a"),
        (2, 3, "serving", "a"),
    ]
    record = leader.store.read_desired()
    assert record is not None and record[1]["model"]["version"] == "a"  # a respawned worker loads a too
    assert leader.metrics.failures() == {"worker_failed": 1}  # type: ignore[attr-defined]
    assert follower.metrics.failures() == {"load_failed": 1}  # type: ignore[attr-defined]
    # A later swap works on every worker.
    assert put(leader, doc("c"))["changed"] is True
    assert served([leader, follower]) == ["c", "c"]


def test_a_follower_that_switched_goes_back_when_another_fails(pod: Callable[[int], list[Runtime]]) -> None:
    leader, good, bad = pod(3)
    FakeModel.follower_failures[(3, "sha256:" + "b" * 64)] = LoadFailed("weights did not load: boom")
    with pytest.raises(FollowFailed, match=r"worker 3 could not take generation 2: .*rolled back"):
        put(leader, doc("b"))
    assert served([leader, good, bad]) == ["a", "a", "a"]
    assert all(rt.ready for rt in (leader, good, bad))


def test_a_worker_that_cannot_go_back_makes_the_pod_not_ready(pod: Callable[[int], list[Runtime]]) -> None:
    leader, good, bad = pod(3)
    FakeModel.follower_failures[(3, "sha256:" + "b" * 64)] = LoadFailed("weights did not load: boom")
    FakeModel.follower_failures[(2, "sha256:" + "a" * 64)] = LoadFailed("weights did not load: gone")
    with pytest.raises(FollowFailed) as caught:
        put(leader, doc("b"))
    assert "rolling the pod back to m:a (generation 3) failed too: worker 2 could not take generation 3" in (
        caught.value.message
    )
    assert served([leader, good, bad]) == ["a", "b", "a"]  # mixed: /readyz must say so
    assert not any(rt.ready for rt in (leader, good, bad))
    FakeModel.follower_failures.clear()
    assert put(leader, doc("c"))["changed"] is True  # the next good swap heals the pod
    assert served([leader, good, bad]) == ["c", "c", "c"]
    assert all(rt.ready for rt in (leader, good, bad))


def test_an_unexpected_follower_error_is_reported_once_not_retried(pod: Callable[[int], list[Runtime]]) -> None:
    leader, follower = pod(2)
    b = "sha256:" + "b" * 64
    FakeModel.follower_failures[(2, b)] = AttributeError("'NoneType' object has no attribute 'names'")
    with pytest.raises(FollowFailed) as caught:
        put(leader, doc("b"))
    # 500 naming the error at once, not a 504 after the follower retried until the leader gave up
    assert caught.value.status == 500
    assert "worker 2 could not take generation 2: load_failed: weights sha256:" in caught.value.message
    assert "AttributeError: 'NoneType' object has no attribute 'names'" in caught.value.message
    assert FakeModel.loads.count(b) == 2  # the leader once, the follower once
    assert follower.metrics.failures() == {"load_failed": 1}  # type: ignore[attr-defined]
    assert served([leader, follower]) == ["a", "a"]


def test_a_respawned_worker_is_not_ready_on_its_predecessors_status(
    pod: Callable[[int], list[Runtime]], monkeypatch: pytest.MonkeyPatch
) -> None:
    leader, old_follower = pod(2)
    old_follower.stop()
    assert leader.ready
    # Worker 2 is respawned: its old status file still names the model its predecessor served.
    gate = threading.Event()
    original = FakeModel.load.__func__  # type: ignore[attr-defined]

    def slow_load(cls: type[FakeModel], desired: Desired, weights: Path, *, device: str) -> FakeModel:
        gate.wait(10)
        return original(cls, desired, weights, device=device)  # type: ignore[no-any-return]

    monkeypatch.setattr(FakeModel, "load", classmethod(slow_load))
    respawned = Runtime(leader.settings, leader.store, FakeMetrics(), worker=2)  # type: ignore[arg-type]
    boot = threading.Thread(target=respawned.start, name="overseer-boot")
    boot.start()
    try:
        wait_for(lambda: leader.store.statuses()[1]["state"] == "loading", 5, "worker 2 to report loading")
        assert leader.store.statuses()[1]["model"] is None
        assert not leader.ready  # /readyz 503 on every worker while worker 2 loads
    finally:
        gate.set()
        boot.join(10)
    respawned.stop()
    assert leader.ready and respawned.ready


# --- several swaps in a row: a slow follower, a rollback, and a later PUT ------------------------


class ObservedLock:
    """A worker's `_lock` that says when someone had to wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waited = threading.Event()

    def __enter__(self) -> ObservedLock:
        if not self._lock.acquire(blocking=False):
            self.waited.set()
            self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class Installs:
    """FakeMetrics.serving, recording every model a worker switched to (what its requests saw)."""

    def __init__(self, rt: Runtime) -> None:
        self.versions: list[str] = []
        rt.metrics.serving = lambda new, old: self.versions.append(new["version"])  # type: ignore[method-assign]


def gate_follower_load(monkeypatch: pytest.MonkeyPatch, worker: int, digest_char: str) -> threading.Event:
    """Worker `worker`'s follower blocks loading `digest_char` until the returned event is set."""
    gate = threading.Event()
    original = FakeModel.load.__func__  # type: ignore[attr-defined]

    def gated(cls: type[FakeModel], desired: Desired, weights: Path, *, device: str) -> FakeModel:
        if threading.current_thread().name == f"overseer-follower-{worker}" and desired.version == digest_char:
            assert gate.wait(10), "test gate never opened"
        return original(cls, desired, weights, device=device)  # type: ignore[no-any-return]

    monkeypatch.setattr(FakeModel, "load", classmethod(gated))
    return gate


def run(target: Callable[[], Any]) -> tuple[threading.Thread, list[BaseException], list[Any]]:
    errors: list[BaseException] = []
    results: list[Any] = []

    def body() -> None:
        try:
            results.append(target())
        except BaseException as error:  # handed to the test
            errors.append(error)

    thread = threading.Thread(target=body)
    thread.start()
    return thread, errors, results


def test_a_put_after_a_timed_out_swap_rolls_back_to_what_the_pod_committed(
    pod: Callable[[int], list[Runtime]], monkeypatch: pytest.MonkeyPatch
) -> None:
    w1, w2 = pod(2)
    for rt in (w1, w2):
        rt.settings.follow_timeout_s = 1
    gate = gate_follower_load(monkeypatch, 2, "b")
    w2._lock = ObservedLock()  # type: ignore[assignment]
    # PUT b to worker 1; worker 2 is slow: 504, and the pod is rolled back to a (generation 3).
    with pytest.raises(FollowFailed) as first:
        put(w1, doc("b"))
    assert first.value.status == 504
    record = w1.store.read_desired()
    assert record is not None and (record[0], record[1]["model"]["version"]) == (3, "a")
    # PUT c to worker 2 while it is still loading b; worker 1 cannot load c.
    FakeModel.follower_failures[(1, "sha256:" + "c" * 64)] = LoadFailed("weights did not load: boom")
    thread, errors, _ = run(lambda: put(w2, doc("c")))
    try:
        wait_for(w2._lock.waited.is_set, 5, "the PUT to wait for worker 2's loading follower")  # type: ignore[attr-defined]
    finally:
        gate.set()
        thread.join(15)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], FollowFailed)
    assert "the pod was rolled back: every worker serves m:a again" in errors[0].message
    assert served([w1, w2]) == ["a", "a"]  # a, what the pod had committed: never b, which was rejected
    record = w1.store.read_desired()
    assert record is not None and record[1]["model"]["version"] == "a"
    assert w1.ready and w2.ready


def test_a_follower_never_installs_a_model_rolled_back_while_it_loaded(
    pod: Callable[[int], list[Runtime]], monkeypatch: pytest.MonkeyPatch
) -> None:
    w1, w2 = pod(2)
    for rt in (w1, w2):
        rt.settings.follow_timeout_s = 1
    installs = Installs(w2)
    gate = gate_follower_load(monkeypatch, 2, "b")
    # Worker 2 finishes loading b only once the rollback to a (generation 3) is published.
    opener, opener_errors, _ = run(
        lambda: (wait_for(lambda: w1.store.desired_generation() == 3, 10, "the rollback"), gate.set())
    )
    with pytest.raises(FollowFailed) as caught:
        put(w1, doc("b"))
    opener.join(10)
    assert not opener.is_alive() and opener_errors == []
    assert caught.value.status == 504
    assert "the pod was rolled back: every worker serves m:a again (generation 3)" in caught.value.message
    assert installs.versions == []  # b was loaded, but no request of worker 2 ever got it
    assert served([w1, w2]) == ["a", "a"]
    assert w1.ready and w2.ready


def test_the_swap_lock_serialises_puts_of_different_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers: separate in-process locks, one state directory. Only the flock keeps them apart."""
    store = fake_pod_state(tmp_path, monkeypatch)
    settings = ServingSettings(state_dir=tmp_path)  # one worker each: no follower, only the lock
    one, two = (Runtime(settings, StateStore(tmp_path), FakeMetrics(), worker=n) for n in (1, 2))  # type: ignore[arg-type]
    one.start()
    two.start()
    meter = OverlapMeter(monkeypatch)
    runs = [run(lambda rt=rt, c=c: put(rt, doc(c))) for rt, c in ((one, "b"), (two, "c"), (one, "d"), (two, "e"))]
    for thread, _, _ in runs:
        thread.join(10)
    assert [thread.is_alive() for thread, _, _ in runs] == [False] * 4
    assert [errors for _, errors, _ in runs] == [[]] * 4
    assert [results[0]["changed"] for _, _, results in runs] == [True] * 4
    assert meter.most == 1
    assert store.desired_generation() == 5


@pytest.mark.parametrize(("device", "emptied"), [("cuda:0", 2), ("0", 2), ("cpu", 0)])
def test_a_released_or_failed_model_gives_its_cuda_memory_back(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, device: str, emptied: int
) -> None:
    import torch

    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    runtime.settings.device = device
    put(runtime, doc("b"))  # a is released: its cached blocks go back to the device
    assert len(calls) == emptied // 2
    FakeModel.fail_digests.add("sha256:" + "d" * 64)
    with pytest.raises(LoadFailed):
        put(runtime, doc("d"))  # what the half-loaded d reserved goes back too
    assert len(calls) == emptied
    assert runtime.model().desired.version == "b"
