"""Per-worker model runtime: the model now serving and the in-place swap protocol.

Swap (PUT /admin/model, on the worker that received it):
  1. parse and validate the document (schema, then the parameters this server honours);
  2. take the pod-wide swap lock (flock), so concurrent PUTs run one after another;
  3. no-op if the same weights with the same effective config are already serving;
  4. fetch into the verified cache (digest checked before anything is unpickled);
  5. load with Ultralytics' weights_only loader beside the old model, warm up, smoke-test;
  6. switch: one reference assignment. A request holds the model it started with, so requests in
     flight finish on the old model, which is freed when the last of them completes;
  7. publish the document in the shared desired-state file; other workers (if any) follow, and
     the PUT answers once every worker reports the new generation.
Any failure before step 6 leaves the old model serving and raises a ServingError.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from overseer_serving import logs
from overseer_serving.detector import LoadedModel
from overseer_serving.document import Desired, load_document, parse, validate
from overseer_serving.errors import FollowFailed, NotReady, ServingError
from overseer_serving.fetch import fetch
from overseer_serving.metrics import Metrics
from overseer_serving.settings import ServingSettings
from overseer_serving.state import StateStore

log = logs.get("runtime")


class Runtime:
    def __init__(self, settings: ServingSettings, store: StateStore, metrics: Metrics, worker: int) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.worker = worker
        self.generation = 0
        self._current: LoadedModel | None = None
        self._state = "starting"
        self._error: str | None = None
        self._lock = threading.Lock()  # one swap at a time inside this worker
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None

    # reading -------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """This worker serves a model, and so does every other worker of the pod: the kernel
        hands connections to any worker, so one still loading would fail requests."""
        if self._current is None:
            return False
        if self.settings.workers == 1:
            return True
        serving = {int(s["worker"]) for s in self.store.statuses() if s.get("model")}
        return len(serving) >= self.settings.workers

    def model(self) -> LoadedModel:
        """The model a request should use, taken once at its start."""
        current = self._current
        if current is None:
            raise NotReady("no model loaded yet")
        return current

    def describe(self) -> dict[str, Any]:
        current = self._current
        answer: dict[str, Any] = {
            "model": current.desired.identity() if current else None,
            "worker": self.worker,
            "generation": self.generation,
            "state": self._state,
        }
        if current:
            answer["schema"] = {
                "name": current.desired.document.schema_.name,
                "version": current.desired.document.schema_.version,
            }
            answer["config"] = current.desired.config
        if self._error:
            answer["error"] = self._error
        answer["workers"] = self.store.statuses()
        return answer

    # start-up ------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the pod's desired model (blocking); then follow later swaps made by other workers."""
        record = self.store.read_desired()
        if record is None:
            raise RuntimeError(f"no desired model in {self.store.desired_file}")
        generation, document = record
        with self._lock:
            desired = validate(parse(document))
            self._install(self._prepare(desired), generation)
        if self.settings.workers > 1:
            self._follower = threading.Thread(target=self._follow, name="overseer-follower", daemon=True)
            self._follower.start()

    def stop(self) -> None:
        self._stop.set()

    # swapping ------------------------------------------------------------------------------

    def put(self, raw: bytes, content_type: str | None) -> dict[str, Any]:
        """PUT /admin/model. Blocking: call from a worker thread."""
        started = time.monotonic()
        try:
            desired = load_document(raw, content_type=content_type)
            with self.store.swap_lock(), self._lock:
                current = self._current
                if current is not None and current.desired.same_as(desired):
                    log.info("swap is a no-op: model already serving", extra=logs.model_fields(desired.identity()))
                    return {"changed": False, **self.describe()}
                previous = current.desired.identity() if current else None
                log.info(
                    "swap started",
                    extra={**logs.model_fields(desired.identity()), **logs.model_fields(previous, "previous")},
                )
                loaded = self._prepare(desired)
                generation = self.store.write_desired(desired.document.to_wire())
                self._install(loaded, generation)
            workers = self._wait_for_followers(generation)
        except ServingError as error:
            self.metrics.swap_failures.labels(error.reason).inc()
            log.warning("swap refused or failed", extra={"reason": error.reason, "error": error.message})
            raise
        seconds = time.monotonic() - started
        self.metrics.swap_seconds.observe(seconds)
        self.metrics.swaps.labels(desired.name, desired.version).inc()
        log.info("swap done", extra={**logs.model_fields(desired.identity()), "seconds": round(seconds, 3)})
        return {
            "changed": True,
            "previous": previous,
            "swap_seconds": round(seconds, 3),
            **self.describe(),
            "workers": workers,
        }

    def _prepare(self, desired: Desired) -> LoadedModel:
        weights = fetch(
            desired.document.model.uri,
            desired.digest,
            self.settings.weights_dir,
            timeout_s=self.settings.fetch_timeout_s,
            max_bytes=self.settings.max_weights_bytes,
        )
        return LoadedModel.load(desired, weights, device=self.settings.device)

    def _install(self, loaded: LoadedModel, generation: int) -> None:
        """The switch. Call with `_lock` held."""
        old = self._current
        self._current = loaded  # atomic: the next request sees the new model
        self.generation = generation
        self._state, self._error = "serving", None
        self.metrics.serving(loaded.desired.identity(), old.desired.identity() if old else None)
        self._publish_status()
        log.info(
            "model serving",
            extra={**logs.model_fields(loaded.desired.identity()), "generation": generation, "worker": self.worker},
        )

    def _publish_status(self) -> None:
        current = self._current
        self.store.write_status(
            self.worker,
            {
                "worker": self.worker,
                "pid": os.getpid(),
                "generation": self.generation,
                "state": self._state,
                "model": current.desired.identity() if current else None,
                "error": self._error,
            },
        )

    # multi-worker --------------------------------------------------------------------------

    def _follow(self) -> None:
        """Apply swaps published by other workers of this pod."""
        while not self._stop.wait(self.settings.poll_interval_s):
            try:
                if self.store.desired_generation() > self.generation:
                    self._catch_up()
            except Exception:  # keep following; the status file carries the error
                log.exception("follower loop error", extra={"worker": self.worker})

    def _catch_up(self) -> None:
        with self._lock:
            record = self.store.read_desired()
            if record is None or record[0] <= self.generation:
                return
            generation, document = record
            try:
                desired = validate(parse(document))
                current = self._current
                if current is not None and current.desired.same_as(desired):
                    self.generation = generation
                    self._publish_status()
                    return
                self._install(self._prepare(desired), generation)
            except ServingError as error:
                # Keep serving the old model; the leader reports this worker's error.
                self.generation = generation
                self._state, self._error = "failed", f"{error.reason}: {error.message}"
                self.metrics.swap_failures.labels(error.reason).inc()
                self._publish_status()
                log.warning("follower swap failed", extra={"worker": self.worker, "error": self._error})

    def _wait_for_followers(self, generation: int) -> list[dict[str, Any]]:
        if self.settings.workers <= 1:
            return self.store.statuses()
        deadline = time.monotonic() + self.settings.follow_timeout_s
        while True:
            statuses = {int(s["worker"]): s for s in self.store.statuses()}
            done = [s for s in statuses.values() if s["generation"] >= generation]
            if len(done) >= self.settings.workers:
                failed = [s for s in done if s["state"] == "failed"]
                if failed:
                    raise FollowFailed(
                        "; ".join(f"worker {s['worker']} kept its old model: {s['error']}" for s in failed)
                    )
                return sorted(statuses.values(), key=lambda s: int(s["worker"]))
            if time.monotonic() > deadline:
                missing = sorted(set(range(1, self.settings.workers + 1)) - {int(s["worker"]) for s in done})
                raise FollowFailed(f"workers {missing} did not report generation {generation} in time", status=504)
            time.sleep(self.settings.poll_interval_s / 2)
