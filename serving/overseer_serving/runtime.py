"""Per-worker model runtime: the model now serving and the in-place swap protocol.

Swap (PUT /admin/model, on the worker that received it - the leader of this swap):
  1. parse and validate the document (schema, then the parameters this server honours);
  2. take the pod-wide swap lock (flock), so concurrent PUTs run one after another;
  3. no-op if the same weights with the same effective config already serve on every worker;
  4. fetch into the verified cache (digest checked before anything is unpickled);
  5. load with Ultralytics' weights_only loader beside the old model, warm up, smoke-test;
  6. publish the document as the next generation in the shared desired-state file; other workers
     (if any) follow, and the leader waits until each reports it;
  7. switch: one reference assignment. A request holds the model it started with, so requests in
     flight finish on the old model, which is freed when the last of them completes.
Any failure before step 7 leaves the old model serving and raises a ServingError. If another
worker fails (or does not report in time) at step 6, the leader never switches and publishes the
previous document as a further generation, so workers that did switch go back: the pod as a whole
keeps the old model (the PUT answers worker_failed). A worker that cannot go back reports
"failed", and /readyz is 503 until a later swap succeeds. "Previous" is the document the pod last
committed (desired.json, read under the swap lock), never the model the leader happens to hold: a
leader may be behind (still loading a swap since rolled back), and catches up before it swaps. A
follower that finishes loading a generation already superseded drops it without serving it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from overseer_serving import logs
from overseer_serving.auth import AdminToken
from overseer_serving.detector import LoadedModel
from overseer_serving.document import Desired, load_document, parse, validate
from overseer_serving.errors import FetchFailed, FollowFailed, LoadFailed, NotReady, ServingError
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
        self.admin_token = AdminToken(settings.admin_token_file)

    # reading -------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """This worker serves a model, and so does every other worker of the pod (the kernel hands
        connections to any worker, so one still loading would fail requests), and none of them
        failed to reach the pod's desired model (the pod would answer from mixed models)."""
        if self._current is None:
            return False
        if self.settings.workers == 1:
            return True
        serving = {int(s["worker"]) for s in self.store.statuses() if s.get("model") and s.get("state") != "failed"}
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
        # First thing: a respawned worker finds the status its previous process wrote (with the
        # model that process served); until this one serves, the pod must not look ready.
        self._state = "loading"
        self._publish_status()
        record = self.store.read_desired()
        if record is None:
            raise RuntimeError(f"no desired model in {self.store.desired_file}")
        generation, document = record
        with self._lock:
            try:
                self._install(self._prepare(validate(parse(document))), generation)
            except ServingError as error:
                self._state, self._error = "failed", f"{error.reason}: {error.message}"
                self._publish_status()
                raise
        if self.settings.workers > 1:
            self._follower = threading.Thread(target=self._follow, name=f"overseer-follower-{self.worker}", daemon=True)
            self._follower.start()

    def stop(self) -> None:
        self._stop.set()

    # swapping ------------------------------------------------------------------------------

    def put(self, raw: bytes, content_type: str | None) -> dict[str, Any]:
        """PUT /admin/model. Blocking: call from a worker thread."""
        started = time.monotonic()
        try:
            desired = load_document(raw, content_type=content_type, max_bytes=self.settings.max_document_bytes)
            with self.store.swap_lock(), self._lock:
                return self._swap(desired, started)
        except ServingError as error:
            self._swap_failed(error)
            raise
        except Exception as error:  # a bug or an environment problem: still a failed swap, counted and said
            log.exception("swap failed unexpectedly", extra={"worker": self.worker})
            failure = ServingError(f"swap failed: {type(error).__name__}: {error}")
            self._swap_failed(failure)
            raise failure from error

    def _swap(self, desired: Desired, started: float) -> dict[str, Any]:
        """Steps 3-7 of the protocol. Call with the swap lock and `_lock` held."""
        # A worker may be behind the pod: it was still loading a swap that was since rolled back
        # (its follower holds `_lock` while it loads). Bring it to the committed document first, so
        # that it serves what the pod committed before it leads a swap from there.
        self._catch_up_locked()
        current = self._current
        if current is not None and current.desired.same_as(desired) and self._pod_serves_desired():
            log.info("swap is a no-op: model already serving", extra=logs.model_fields(desired.identity()))
            return {"changed": False, **self.describe()}
        # What a failed swap goes back to is what the pod committed, never what this worker holds.
        previous = self._committed()
        log.info(
            "swap started",
            extra={
                **logs.model_fields(desired.identity()),
                **logs.model_fields(previous.identity() if previous else None, "previous"),
            },
        )
        # Same model and config, but some worker is not on it (a failed rollback): re-publish it.
        loaded = current if current is not None and current.desired.same_as(desired) else self._prepare(desired)
        generation = self.store.write_desired(desired.document.to_wire())
        if self.settings.workers > 1:
            try:
                self._wait_for_followers(generation)
            except FollowFailed as failure:
                raise self._roll_back(previous, failure) from None
        self._install(loaded, generation)
        seconds = time.monotonic() - started
        self.metrics.swap_seconds.observe(seconds)
        self.metrics.swaps.labels(desired.name, desired.version).inc()
        log.info("swap done", extra={**logs.model_fields(desired.identity()), "seconds": round(seconds, 3)})
        return {
            "changed": True,
            "previous": previous.identity() if previous else None,
            "swap_seconds": round(seconds, 3),
            **self.describe(),
        }

    def _swap_failed(self, error: ServingError) -> None:
        self.metrics.swap_failures.labels(error.reason).inc()
        log.warning("swap refused or failed", extra={"reason": error.reason, "error": error.message})

    def _prepare(self, desired: Desired) -> LoadedModel:
        """Fetch, verify, load, warm up. Every failure is a ServingError: the caller counts it and
        keeps the old model, whatever went wrong."""
        uri = desired.document.model.uri
        try:
            weights = fetch(
                uri,
                desired.digest,
                self.settings.weights_dir,
                timeout_s=self.settings.fetch_timeout_s,
                max_bytes=self.settings.max_weights_bytes,
                s3_addressing_style=self.settings.s3_addressing_style,
            )
        except ServingError:
            raise
        except Exception as error:  # OSError in the cache, and the like: not the source's fault
            raise FetchFailed(f"cannot fetch {uri}: {type(error).__name__}: {error}", status=500) from error
        try:
            return LoadedModel.load(desired, weights, device=self.settings.device)
        except ServingError:
            release_device_cache(self.settings.device)  # what the half-loaded model reserved
            raise
        except Exception as error:
            release_device_cache(self.settings.device)
            raise LoadFailed(f"weights {desired.digest} did not load: {type(error).__name__}: {error}") from error

    def _committed(self) -> Desired | None:
        """The pod's desired document (the last committed generation), validated."""
        record = self.store.read_desired()
        return None if record is None else validate(parse(record[1]))

    def _install(self, loaded: LoadedModel, generation: int) -> None:
        """The switch. Call with `_lock` held."""
        old = self._current
        self._current = loaded  # atomic: the next request sees the new model
        self.generation = generation
        self._state, self._error = "serving", None
        if old is not loaded:
            self.metrics.serving(loaded.desired.identity(), old.desired.identity() if old else None)
        self._publish_status()
        if old is not None and old is not loaded:
            del old  # requests still running on it keep it alive; the last one frees it
            release_device_cache(self.settings.device)
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
            except Exception:  # keep following; _catch_up records swap errors in the status file
                log.exception("follower loop error", extra={"worker": self.worker})

    def _catch_up(self) -> None:
        with self._lock:
            self._catch_up_locked()

    def _catch_up_locked(self) -> None:
        """Take the pod's desired generation if this worker is behind it. Call with `_lock` held."""
        while True:
            record = self.store.read_desired()
            if record is None or record[0] <= self.generation:
                return
            generation, document = record
            try:
                desired = validate(parse(document))
                current = self._current
                if current is not None and current.desired.same_as(desired):
                    self.generation = generation
                    self._state, self._error = "serving", None
                    self._publish_status()
                    return
                loaded = self._prepare(desired)
                if self.store.desired_generation() > generation:
                    # Superseded while it loaded (the leader rolled back, or a newer swap came):
                    # never serve it, not even for one request. Drop it and take the newer one.
                    log.info("loaded model superseded", extra={"worker": self.worker, "generation": generation})
                    del loaded
                    release_device_cache(self.settings.device)
                    continue
                self._install(loaded, generation)
            except Exception as error:
                # Keep serving the old model and report, once for this generation (no retry loop):
                # the leader rolls the pod back, or says which worker failed.
                failure = error if isinstance(error, ServingError) else LoadFailed(f"{type(error).__name__}: {error}")
                self.generation = generation
                self._state, self._error = "failed", f"{failure.reason}: {failure.message}"
                self.metrics.swap_failures.labels(failure.reason).inc()
                self._publish_status()
                log.warning("follower swap failed", extra={"worker": self.worker, "error": self._error})
                return

    def _pod_serves_desired(self) -> bool:
        """Every worker reports the pod's current desired generation, serving (not failed)."""
        if self.settings.workers <= 1:
            return True
        generation = self.store.desired_generation()
        statuses = {int(s["worker"]): s for s in self.store.statuses()}
        return all(
            (s := statuses.get(w)) is not None and s["generation"] == generation and s["state"] == "serving"
            for w in range(1, self.settings.workers + 1)
        )

    def _wait_for_followers(self, generation: int) -> None:
        """Until every other worker reports `generation`; FollowFailed if one failed or is late."""
        others = set(range(1, self.settings.workers + 1)) - {self.worker}
        deadline = time.monotonic() + self.settings.follow_timeout_s
        while True:
            statuses = {int(s["worker"]): s for s in self.store.statuses()}
            done = {w: statuses[w] for w in others if w in statuses and statuses[w]["generation"] >= generation}
            if len(done) == len(others):
                failed = [s for s in done.values() if s["state"] == "failed"]
                if failed:
                    raise FollowFailed(
                        "; ".join(
                            f"worker {s['worker']} could not take generation {generation}: {s['error']}" for s in failed
                        )
                    )
                return
            if time.monotonic() > deadline or self._stop.is_set():
                missing = sorted(others - set(done))
                raise FollowFailed(
                    f"workers {missing} did not report generation {generation} within "
                    f"{self.settings.follow_timeout_s:g} s",
                    status=504,
                )
            self._stop.wait(self.settings.poll_interval_s / 2)

    def _roll_back(self, previous: Desired | None, failure: FollowFailed) -> FollowFailed:
        """Publish the previous document again, so that workers which took the new model go back.
        The leader itself never switched. Returns the error the PUT answers."""
        if previous is None:
            return failure
        name = f"{previous.name}:{previous.version}"
        generation = self.store.write_desired(previous.document.to_wire())
        current = self._current
        if current is None or not current.desired.same_as(previous):
            # Only if this worker could not catch up with the committed document before the swap.
            try:
                self._install(self._prepare(previous), generation)
            except ServingError as error:
                self.generation = generation
                self._state, self._error = "failed", f"{error.reason}: {error.message}"
                self._publish_status()
                return FollowFailed(
                    f"{failure.message}; rolling the pod back to {name} (generation {generation}) failed too: "
                    f"worker {self.worker} could not take it: {self._error}",
                    status=failure.status,
                )
        else:
            self.generation = generation  # this worker already serves it
            self._publish_status()
        log.warning("swap rolled back", extra={**logs.model_fields(previous.identity()), "error": failure.message})
        try:
            self._wait_for_followers(generation)
        except FollowFailed as second:
            return FollowFailed(
                f"{failure.message}; rolling the pod back to {name} (generation {generation}) failed too: "
                f"{second.message}",
                status=failure.status,
            )
        return FollowFailed(
            f"{failure.message}; the pod was rolled back: every worker serves {name} again (generation {generation})",
            status=failure.status,
        )


def release_device_cache(device: str) -> None:
    """Give the CUDA caching allocator's unused blocks back to the device (a released model's
    memory stays reserved otherwise). A no-op on CPU, and without torch or CUDA."""
    if device.strip().lower().startswith(("cpu", "mps")):  # else "cuda", "cuda:N", "0", "0,1"...
        return
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
