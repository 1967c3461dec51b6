"""The serving pod's whole HTTP surface, in one place.

    POST /detect          one image (multipart field `image`, or JSON {"image": "<base64>"})
                          -> {"detections": [...], "model": {name, version, digest}}      [http_app]
    POST /detect/batch    several images (multipart field `images`, at most 16) -> one answer per
                          image, predicted together in one call                             [http_app]
    GET  /admin/model     bearer token; the model each worker serves                        [http_app]
    PUT  /admin/model     bearer token; the model document -> in-place swap (runtime.py)     [http_app]
    GET  /livez           BentoML; alive once the worker runs
    GET  /readyz          BentoML; 200 only once a validated, fetched, verified, loaded and warmed
                          model serves (YoloService.__is_ready__)
    GET  /metrics         BentoML; Prometheus text, ours listed in metrics.py

Errors are `ServingError`s (errors.py), answered by `on_error` as
{"error": {"status", "reason", "message"}}. Run it with `overseer serve` (command.py): the worker
reads its settings, desired model and shared state from what that command prepared.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from typing import Any

import anyio.to_thread
import bentoml
from PIL import Image as PILImage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from overseer_serving import logs, offline, supervision
from overseer_serving.auth import check_bearer, read_token
from overseer_serving.errors import BadRequest, PayloadTooLarge, ServingError, UnsupportedMediaType
from overseer_serving.imaging import decode_image
from overseer_serving.metrics import Metrics
from overseer_serving.runtime import Runtime
from overseer_serving.settings import SERVICE_NAME, ServingSettings
from overseer_serving.state import StateStore

BATCH_MAX_IMAGES = 16

log = logs.get("service")


# --- handlers of http_app -------------------------------------------------------------------


async def detect(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    started = time.perf_counter()
    model = None
    code = 500
    try:
        model = runtime.model()  # taken once: this request finishes on this model, swap or not
        image = await _read_image(request, runtime.settings)
        detections = (await anyio.to_thread.run_sync(model.predict, [image]))[0]
        code = 200
        return JSONResponse({"detections": detections, "model": model.desired.identity()})
    except ServingError as error:
        code = error.status
        raise
    finally:
        identity = model.desired.identity() if model else None
        runtime.metrics.request("detect", identity, code, time.perf_counter() - started)


async def detect_batch(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    started = time.perf_counter()
    model = None
    code = 500
    count = 1  # an answered batch counts its images, a refused request once
    try:
        model = runtime.model()
        images = await _read_batch(request, runtime.settings)
        count = len(images)
        results = await anyio.to_thread.run_sync(model.predict, images)
        code = 200
        return JSONResponse([{"detections": detections, "model": model.desired.identity()} for detections in results])
    except ServingError as error:
        code = error.status
        raise
    finally:
        identity = model.desired.identity() if model else None
        runtime.metrics.request("detect_batch", identity, code, time.perf_counter() - started, n=count)


async def get_model(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    check_bearer(request.headers.get("authorization"), read_token(runtime.settings.admin_token_file))
    return JSONResponse(await anyio.to_thread.run_sync(runtime.describe))


async def put_model(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    check_bearer(request.headers.get("authorization"), read_token(runtime.settings.admin_token_file))
    raw = await _read_body(request, runtime.settings.max_document_bytes, what="model document")
    # In a thread, and not cancelled if the client goes away: a swap runs to its end.
    answer = await anyio.to_thread.run_sync(runtime.put, raw, request.headers.get("content-type"))
    return JSONResponse(answer)


async def on_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ServingError):
        log.error("unexpected error", exc_info=exc, extra={"path": request.url.path})
        exc = ServingError(f"unexpected error: {type(exc).__name__}")
    return JSONResponse(exc.to_json(), status_code=exc.status)


http_app = Starlette(
    routes=[
        Route("/detect", detect, methods=["POST"]),
        Route("/detect/batch", detect_batch, methods=["POST"]),
        Route("/admin/model", get_model, methods=["GET"]),
        Route("/admin/model", put_model, methods=["PUT"]),
    ],
    exception_handlers={ServingError: on_error, Exception: on_error},
)


# --- the BentoML service --------------------------------------------------------------------


@bentoml.service(name=SERVICE_NAME, traffic={"timeout": 600})
@bentoml.asgi_app(http_app, path="/")
class YoloService:
    """One worker process: loads the desired model in the background, then serves it."""

    def __init__(self) -> None:
        from bentoml._internal.context import server_context

        offline.apply()
        self.settings = ServingSettings()
        supervision.die_with_parent(self.settings.supervisor_pid)
        logs.configure(self.settings.log_format)
        if self.settings.state_dir is None:
            raise RuntimeError("OVERSEER_STATE_DIR is not set: start this service with `overseer serve`")
        self.worker = int(server_context.worker_index or 1)
        store = StateStore(self.settings.state_dir)
        self.runtime = Runtime(self.settings, store, Metrics(self.worker), self.worker)
        http_app.state.runtime = self.runtime
        # Load off the event loop so /livez answers (and /readyz says 503) while the model loads.
        threading.Thread(target=self._boot, name="overseer-boot", daemon=True).start()

    def _boot(self) -> None:
        try:
            self.runtime.start()
        except Exception as error:
            message = error.message if isinstance(error, ServingError) else f"{type(error).__name__}: {error}"
            log.error("start-up failed", extra={"error": message, "worker": self.worker})  # noqa: TRY400 - one line, no traceback
            self.runtime.store.write_fatal(message)
            supervision.stop_supervisor(self.settings.supervisor_pid)

    def __is_ready__(self) -> bool:
        return self.runtime.ready

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def shutdown(self) -> None:
        self.runtime.stop()


# --- helpers --------------------------------------------------------------------------------


def _runtime(request: Request) -> Runtime:
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise ServingError("service is not initialised", reason="not_ready", status=503)
    return runtime


async def _read_body(request: Request, limit: int, *, what: str) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"{what} is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"{what} exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_image(request: Request, settings: ServingSettings) -> PILImage.Image:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # base64 in JSON is 4/3 the size of the image it carries
    body = await _read_body(request, settings.max_image_bytes * 4 // 3 + 4096, what="request body")
    if media == "multipart/form-data":
        data = await _multipart_image(request, body)
    elif media in ("application/json", ""):
        data = _json_image(body)
    else:
        raise UnsupportedMediaType(f"send multipart/form-data (field 'image') or application/json, not {media!r}")
    if len(data) > settings.max_image_bytes:
        raise PayloadTooLarge(f"image is {len(data)} bytes; the limit is {settings.max_image_bytes}")
    return await anyio.to_thread.run_sync(lambda: decode_image(data, max_pixels=settings.max_image_pixels))


async def _read_batch(request: Request, settings: ServingSettings) -> list[PILImage.Image]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "multipart/form-data":
        raise UnsupportedMediaType(f"send multipart/form-data with the images in field 'images', not {media!r}")
    # One limit for the whole batch: a batch is held in memory at once.
    body = await _read_body(request, settings.max_image_bytes + 64 * 1024, what="batch request body")
    files = await _multipart_files(request, body, "images", max_files=BATCH_MAX_IMAGES)

    def decode_all() -> list[PILImage.Image]:
        images = []
        for index, data in enumerate(files):
            try:
                images.append(decode_image(data, max_pixels=settings.max_image_pixels))
            except ServingError as error:  # the same reasons as /detect, naming the image
                raise ServingError(
                    f"image {index}: {error.message}", reason=error.reason, status=error.status
                ) from None
        return images

    return await anyio.to_thread.run_sync(decode_all)


async def _multipart_image(request: Request, body: bytes) -> bytes:
    return (await _multipart_files(request, body, "image", max_files=1))[0]


async def _multipart_files(request: Request, body: bytes, field: str, *, max_files: int) -> list[bytes]:
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        # one more than allowed, so that too many files is our error below, not the parser's
        form = await Request(request.scope, replay).form(max_files=max_files + 1, max_fields=16)
    except Exception as error:  # malformed multipart
        raise BadRequest(f"malformed multipart body: {error}") from None
    try:
        values = form.getlist(field)
        if not values:
            raise BadRequest(f"multipart body has no {field!r} field")
        if len(values) > max_files:
            raise PayloadTooLarge(f"at most {max_files} images per request, got more")
        return [
            value.encode("latin-1", errors="replace") if isinstance(value, str) else await value.read()
            for value in values
        ]
    finally:
        await form.close()


def _json_image(body: bytes) -> bytes:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(f"body is not valid JSON: {error}") from None
    encoded = payload.get("image") if isinstance(payload, dict) else None
    if not isinstance(encoded, str):
        raise BadRequest('expected JSON {"image": "<base64>"}')
    if encoded.startswith("data:"):
        encoded = encoded.partition(",")[2]
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadRequest(f"'image' is not valid base64: {error}") from None
