"""`overseer serve`: validate the start-up model, then run the BentoML server in the foreground.

Process tree: this process becomes BentoML's arbiter (circus) and spawns the worker processes
(OVERSEER_WORKERS, default 1). SIGTERM/SIGINT to this process, or to the whole process group,
stops the workers gracefully and returns 0. Start-up problems - unreadable file, invalid
document or config, unreachable weights, digest mismatch, and (reported back by the worker)
weights that do not load - print one line to stderr and return 1; usage problems return 2.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from overseer_serving.settings import SERVICE_NAME

if TYPE_CHECKING:
    from overseer_serving.settings import ServingSettings

SERVING_EXTRA_MODULES = ("bentoml", "ultralytics", "torch", "PIL", "prometheus_client", "httpx")


def serve(model_file: str | None, token_file: str | None, host: str | None, port: int | None) -> int:
    missing = [m for m in SERVING_EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return _fail(
            f"serving needs the 'serving' extra (missing: {', '.join(missing)}); "
            "install it with: pip install 'schema-overseer[serving]'",
            code=2,
        )
    from overseer_serving import offline

    offline.apply()  # before BentoML or Ultralytics is imported, here or in a worker

    from overseer.api.errors import explain

    from overseer_serving import logs
    from overseer_serving.document import load_document
    from overseer_serving.errors import ServingError
    from overseer_serving.fetch import fetch
    from overseer_serving.settings import ServingSettings
    from overseer_serving.state import StateStore

    flags = {"model_file": model_file, "admin_token_file": token_file, "host": host, "port": port}
    try:
        settings = ServingSettings(**{k: v for k, v in flags.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as error:
        problems = "; ".join(f"{_setting_name(path)}: {message}" for path, message in explain(ServingSettings, error))
        return _fail(f"invalid settings: {problems}", code=2)
    if settings.model_file is None:
        return _fail("no model document: pass --model-file or set OVERSEER_MODEL_FILE", code=2)
    log = logs.configure(settings.log_format)

    own_state_dir = settings.state_dir is None
    state_dir = settings.state_dir or Path(tempfile.mkdtemp(prefix="overseer-serve-"))
    settings = settings.model_copy(update={"state_dir": state_dir, "supervisor_pid": os.getpid()})
    try:
        try:
            raw = settings.model_file.read_bytes()  # type: ignore[union-attr]
        except OSError as error:
            return _fail(f"cannot read model document {settings.model_file}: {error.strerror or error}")
        try:
            desired = load_document(raw)
            fetch(
                desired.document.model.uri,
                desired.digest,
                settings.weights_dir,
                timeout_s=settings.fetch_timeout_s,
                max_bytes=settings.max_weights_bytes,
            )
        except ServingError as error:
            return _fail(f"{settings.model_file}: {error.message}")
        if settings.admin_token_file is None:
            log.warning("no admin token file: /admin/model answers 401 to everyone")

        store = StateStore(state_dir)
        store.prepare()
        store.fatal_file.unlink(missing_ok=True)
        for stale in store.workers_dir.glob("*.json"):
            stale.unlink()
        store.write_desired(desired.document.to_wire())
        log.info(
            "starting",
            extra={
                **logs.model_fields(desired.identity()),
                "host": settings.host,
                "port": settings.port,
                "workers": settings.workers,
            },
        )
        _export(settings)
        try:
            from overseer_serving.service import YoloService

            service: Any = YoloService  # a bentoml Service object once decorated
            service.serve_http(host=settings.host, port=settings.port)  # returns once stopped
        except Exception as error:  # bind failures and the like: one line, no traceback
            return _fail(f"server failed: {type(error).__name__}: {error}")
        fatal = store.read_fatal()
        if fatal:
            return _fail(f"model {desired.name}:{desired.version} ({desired.digest}) failed to start: {fatal}")
        return 0
    finally:
        if own_state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)


def _export(settings: ServingSettings) -> None:
    """Hand the resolved settings and the worker count to the worker processes via the environment.

    Must run before the service module is imported: BentoML reads its config overrides when the
    @bentoml.service class is created.
    """
    os.environ.update(settings.to_env())
    overrides = json.loads(os.environ.get("BENTOML_CONFIG_OVERRIDES") or "{}")
    overrides.setdefault("services", {}).setdefault(SERVICE_NAME, {})["workers"] = settings.workers
    os.environ["BENTOML_CONFIG_OVERRIDES"] = json.dumps(overrides)


def _setting_name(path: str) -> str:
    """`host` -> `--host (OVERSEER_HOST)`: name a setting the way the user set it."""
    flag = {"model_file": "--model-file", "admin_token_file": "--token-file", "host": "--host", "port": "--port"}
    env = f"OVERSEER_{path.upper()}"
    return f"{flag[path]} ({env})" if path in flag else env


def _fail(message: str, code: int = 1) -> int:
    print(f"overseer serve: error: {message}", file=sys.stderr)
    return code
