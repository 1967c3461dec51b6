"""`overseer serve` (= `python -m overseer_serving`): check the start-up model, then run BentoML.

The serving package owns this command: its flags, its checks and its error boundary. `overseer
serve` hands its arguments to `main` (one lazy import in overseer.cli), `python -m overseer_serving`
calls `main` too, so the two accept the same flags and answer the same way.

Process tree: this process becomes BentoML's arbiter (circus) and spawns the worker processes
(OVERSEER_WORKERS, default 1). SIGTERM/SIGINT to this process, or to the whole process group,
stops the workers gracefully and returns 0. Start-up problems - an unreadable or invalid document,
a state or cache directory that cannot be written, an unreadable token file, unreachable weights,
a digest mismatch, and (reported back by the worker) weights that do not load - print ONE line to
stderr, naming the path or setting and the cause, and return 1; usage problems return 2. Nothing
here lets a traceback reach the user.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from overseer_serving.errors import describe_os_error
from overseer_serving.settings import SERVICE_NAME

if TYPE_CHECKING:
    import logging

    from overseer_serving.document import Desired
    from overseer_serving.settings import ServingSettings
    from overseer_serving.state import StateStore

PROG = "overseer serve"
SERVING_EXTRA_MODULES = ("bentoml", "ultralytics", "torch", "PIL", "prometheus_client", "httpx", "botocore")
EXIT_STARTUP, EXIT_USAGE = 1, 2
# The flags, with the settings they set (environment names in ServingSettings).
FLAG_SETTINGS = {"model_file": "--model-file", "admin_token_file": "--token-file", "host": "--host", "port": "--port"}


class StartupError(Exception):
    """A start-up problem, in one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_STARTUP) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise StartupError(message, code=EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Run the model serving process: check the model document, fetch and verify the weights, "
        "then serve /detect and /admin/model. Settings not given as flags come from OVERSEER_* variables.",
    )
    parser.add_argument("--model-file", help="model document to start from (default: $OVERSEER_MODEL_FILE)")
    parser.add_argument("--token-file", help="admin bearer token file (default: $OVERSEER_ADMIN_TOKEN_FILE)")
    parser.add_argument("--host", help="IP address to listen on (default: $OVERSEER_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: $OVERSEER_PORT or 3000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and serve until stopped; the error boundary of the serving process."""
    try:
        args = build_parser().parse_args(list(argv) if argv is not None else None)
        return serve(args.model_file, args.token_file, args.host, args.port)
    except StartupError as error:
        return _fail(error.message, error.code)
    except SystemExit as stop:  # --help
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except OSError as error:  # a step that did not name its own: still the path and the cause
        return _fail(describe_os_error(error))
    except Exception as error:
        return _fail(f"internal error: {type(error).__name__}: {error}")


def serve(model_file: str | None, token_file: str | None, host: str | None, port: int | None) -> int:
    """Check everything the pod needs, then run the BentoML server in the foreground. Returns the exit
    status once the server stops; StartupError for a start-up problem."""
    missing = [m for m in SERVING_EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise StartupError(
            f"serving needs the 'serving' extra (missing: {', '.join(missing)}); "
            "install it with: pip install 'schema-overseer[serving]'",
            code=EXIT_USAGE,
        )
    from overseer_serving import offline

    offline.apply()  # before BentoML or Ultralytics is imported, here or in a worker

    from overseer_serving import logs

    settings = _settings(model_file, token_file, host, port)
    log = logs.configure(settings.log_format)
    own_state_dir = settings.state_dir is None
    state_dir = settings.state_dir or _private_state_dir()
    settings = settings.model_copy(update={"state_dir": state_dir, "supervisor_pid": os.getpid()})
    try:
        return _serve(settings, log)
    finally:
        if own_state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)


def _serve(settings: ServingSettings, log: logging.Logger) -> int:
    from overseer_serving import logs
    from overseer_serving.state import StateStore

    store = StateStore(settings.state_dir)  # type: ignore[arg-type]
    if not os.environ.get("BENTOML_HOME"):
        # BentoML's default, ~/bentoml, is shared by every BentoML process of the user, and each server
        # start empties its Prometheus directory: two servers on one machine (local-cluster pods, tests)
        # would erase each other's metrics. This process needs nothing from a model store there.
        os.environ["BENTOML_HOME"] = str(store.root / "bentoml")
    _prepare_directories(settings, store)
    desired = _read_model_document(settings)
    _check_token_file(settings)
    _fetch_weights(settings, desired)
    # Warnings only once every check passed: a start-up that fails prints its one error line alone.
    if settings.admin_token_file is None:
        log.warning("no admin token file: /admin/model answers 401 to everyone")
    try:
        store.fatal_file.unlink(missing_ok=True)
        for stale in store.workers_dir.glob("*.json"):
            stale.unlink()
        store.write_desired(desired.document.to_wire())
    except OSError as error:
        raise StartupError(describe_os_error(error, "cannot write the state directory")) from None
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
    except OSError as error:
        raise StartupError(_server_os_error(error, settings)) from None
    except Exception as error:  # anything else BentoML raises: one line, no traceback
        raise StartupError(f"server failed: {type(error).__name__}: {error}") from None
    fatal = store.read_fatal()
    if fatal:
        raise StartupError(f"model {desired.name}:{desired.version} ({desired.digest}) failed to start: {fatal}")
    return 0


# --- the start-up steps, each naming what it could not do -------------------------------------------------


def _settings(model_file: str | None, token_file: str | None, host: str | None, port: int | None) -> ServingSettings:
    from overseer.api.errors import explain
    from pydantic import ValidationError

    from overseer_serving.settings import ServingSettings

    flags = {"model_file": model_file, "admin_token_file": token_file, "host": host, "port": port}
    try:
        settings = ServingSettings(**{k: v for k, v in flags.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as error:
        problems = "; ".join(f"{_setting_name(path)}: {message}" for path, message in explain(ServingSettings, error))
        raise StartupError(f"invalid settings: {problems}", code=EXIT_USAGE) from None
    if settings.model_file is None:
        raise StartupError("no model document: pass --model-file or set OVERSEER_MODEL_FILE", code=EXIT_USAGE)
    return settings


def _private_state_dir() -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix="overseer-serve-"))
    except OSError as error:
        raise StartupError(
            describe_os_error(error, "cannot create a private state directory", tempfile.gettempdir())
            + "; set OVERSEER_STATE_DIR (or TMPDIR) to a writable directory"
        ) from None


def _prepare_directories(settings: ServingSettings, store: StateStore) -> None:
    """The state, weights-cache and BentoML home directories exist and take a file: found now, not later."""
    cache_setting = "OVERSEER_CACHE_DIR" if settings.cache_dir is not None else "OVERSEER_STATE_DIR"
    for directory, name, setting in (
        (store.root, "state", "OVERSEER_STATE_DIR"),
        (settings.weights_dir, "weights cache", cache_setting),
        (bentoml_home(), "BentoML home", "BENTOML_HOME"),  # BentoML writes there when the server starts
    ):
        if directory.exists() and not directory.is_dir():
            raise StartupError(f"cannot use {directory} as the {name} directory: it is not a directory ({setting})")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # names the part of the path that failed
            raise StartupError(
                describe_os_error(error, f"cannot write the {name} directory", directory) + f" ({setting})"
            ) from None
        try:
            with tempfile.TemporaryFile(dir=directory, prefix=".overseer-write-check-"):
                pass
        except OSError as error:
            reason = error.strerror or str(error)
            raise StartupError(f"cannot write the {name} directory {directory}: {reason} ({setting})") from None
    try:
        store.prepare()
    except OSError as error:
        message = describe_os_error(error, "cannot write the state directory")
        raise StartupError(f"{message} (OVERSEER_STATE_DIR)") from None


def _read_model_document(settings: ServingSettings) -> Desired:
    from overseer_serving.document import load_document
    from overseer_serving.errors import ServingError

    path = settings.model_file
    assert path is not None  # checked by _settings
    try:
        with path.open("rb") as f:
            raw = f.read(settings.max_document_bytes + 1)
    except OSError as error:
        raise StartupError(describe_os_error(error, "cannot read model document", path)) from None
    try:
        return load_document(raw, max_bytes=settings.max_document_bytes)
    except ServingError as error:
        raise StartupError(f"{path}: {error.message}") from None


def _check_token_file(settings: ServingSettings) -> None:
    from overseer_serving.auth import AdminToken

    if settings.admin_token_file is None:
        return
    problem = AdminToken(settings.admin_token_file).problem()
    if problem is not None:
        raise StartupError(f"{problem} (--token-file, OVERSEER_ADMIN_TOKEN_FILE)")


def _fetch_weights(settings: ServingSettings, desired: Desired) -> None:
    from overseer_serving.errors import ServingError
    from overseer_serving.fetch import fetch

    try:
        fetch(
            desired.document.model.uri,
            desired.digest,
            settings.weights_dir,
            timeout_s=settings.fetch_timeout_s,
            max_bytes=settings.max_weights_bytes,
            s3_addressing_style=settings.s3_addressing_style,
        )
    except ServingError as error:
        raise StartupError(f"{settings.model_file}: {error.message}") from None


def _export(settings: ServingSettings) -> None:
    """Hand the resolved settings and the worker count to the worker processes via the environment.

    Must run before the service module is imported: BentoML reads its config overrides when the
    @bentoml.service class is created.
    """
    os.environ.update(settings.to_env())
    overrides = json.loads(os.environ.get("BENTOML_CONFIG_OVERRIDES") or "{}")
    overrides.setdefault("services", {}).setdefault(SERVICE_NAME, {})["workers"] = settings.workers
    os.environ["BENTOML_CONFIG_OVERRIDES"] = json.dumps(overrides)


def bentoml_home() -> Path:
    """Where BentoML keeps its state: BENTOML_HOME (`overseer serve` sets it to <state dir>/bentoml
    unless it is set), else BentoML's own default, ~/bentoml."""
    return Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")


def _server_os_error(error: OSError, settings: ServingSettings) -> str:
    if error.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) and error.filename is None:
        return f"cannot listen on {settings.host}:{settings.port}: {error.strerror or error} (--host, --port)"
    return f"server failed: {describe_os_error(error)}"


def _setting_name(path: str) -> str:
    """`host` -> `--host (OVERSEER_HOST)`: name a setting the way the user set it."""
    env = f"OVERSEER_{path.upper()}"
    return f"{FLAG_SETTINGS[path]} ({env})" if path in FLAG_SETTINGS else env


def _fail(message: str, code: int = EXIT_STARTUP) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return code
