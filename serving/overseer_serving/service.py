"""The serving pod's whole HTTP surface, in one place.

    POST /detect          one image (multipart field `image`, or JSON {"image": "<base64>"})
                          -> {"detections": [...], "model": {name, version, digest}}      [http_app]
    POST /detect/batch    several images (multipart field `images`, at most 16) -> one answer per
                          image, or an error object for a bad image; concurrent requests are merged
                          by BentoML adaptive batching     [BatchGate, then YoloService.detect_batch]
    GET  /admin/model     bearer token; the model each worker serves                        [http_app]
    PUT  /admin/model     bearer token; the model document -> in-place swap (runtime.py)     [http_app]
    GET  /livez           BentoML; alive once the worker runs
    GET  /readyz          BentoML; 200 only once a validated, fetched, verified, loaded and warmed
                          model serves (YoloService.__is_ready__)
    GET  /metrics         BentoML; Prometheus text, ours listed in metrics.py

Errors are `ServingError`s (errors.py), answered by `on_error` (and `BatchGate`) as
{"error": {"status", "reason", "message"}}; /detect/batch answers that object per bad image.
Run it with `overseer serve` (command.py): the worker reads its settings, desired model and
shared state from what that command prepared.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import anyio.to_thread
import bentoml
from PIL import Image as PILImage
from pydantic import AfterValidator, BeforeValidator
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from overseer_serving import logs, offline, supervision
from overseer_serving.auth import check_token, presented_token
from overseer_serving.errors import BadRequest, PayloadTooLarge, ServingError, UnsupportedMediaType, describe_os_error
from overseer_serving.imaging import decode_image, finish_image, open_image
from overseer_serving.metrics import Metrics
from overseer_serving.runtime import Runtime
from overseer_serving.settings import SERVICE_NAME, ServingSettings
from overseer_serving.state import StateStore

BATCH_MAX_IMAGES = 16  # per request, checked by BatchGate before batching
BATCH_MAX_SIZE = 16  # images per call of detect_batch, all merged requests together
# BentoML answers 503 to a queued request it expects to miss this deadline. Generous: on CPU a
# merged batch of 16 at imgsz 640 takes seconds, and a request may wait for the batch before it.
BATCH_MAX_LATENCY_MS = 30_000

log = logs.get("service")


# --- handlers of http_app -------------------------------------------------------------------


async def detect(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    started = time.perf_counter()
    model = None
    code = 500
    try:
        runtime.model()  # no model yet: 503 before reading the upload
        # The upload first: a slow client must not keep the old model alive through a swap.
        image = await _read_image(request, runtime.settings)
        model = runtime.model()  # taken once, as inference starts: this request finishes on it
        detections = (await anyio.to_thread.run_sync(model.predict, [image]))[0]
        code = 200
        return JSONResponse({"detections": detections, "model": model.desired.identity()})
    except ServingError as error:
        code = error.status
        raise
    finally:
        identity = model.desired.identity() if model else None
        runtime.metrics.request("detect", identity, code, time.perf_counter() - started)


async def get_model(request: Request) -> JSONResponse:
    runtime = await _authorized(request)
    return JSONResponse(await anyio.to_thread.run_sync(runtime.describe, limiter=_admin_threads()))


async def put_model(request: Request) -> JSONResponse:
    runtime = await _authorized(request)
    raw = await _read_body(request, runtime.settings.max_document_bytes, what="model document")
    # In a thread, and not cancelled if the client goes away: a swap runs to its end.
    # On the admin threads: PUTs waiting for the swap lock never take the threads /detect uses.
    answer = await anyio.to_thread.run_sync(
        runtime.put, raw, request.headers.get("content-type"), limiter=_admin_threads()
    )
    return JSONResponse(answer)


async def _authorized(request: Request) -> Runtime:
    """The bearer token, before anything else: the header (no I/O), then the token file (read in a
    thread, cached until it changes), then a constant-time compare. Every server-side problem with
    the token answers the same `invalid bearer token` as a wrong one."""
    presented = presented_token(request.headers.get("authorization"))
    runtime = _runtime(request)
    check_token(presented, await anyio.to_thread.run_sync(runtime.admin_token.current))
    return runtime


ADMIN_THREADS = 2  # one swap runs at a time (the swap lock) and a GET beside it; more PUTs queue here
_admin_limiter: anyio.CapacityLimiter | None = None


def _admin_threads() -> anyio.CapacityLimiter:
    """The admin endpoints' own worker threads, apart from anyio's default ones (which /detect uses)."""
    global _admin_limiter  # noqa: PLW0603 - one per worker process, made in its event loop
    if _admin_limiter is None:
        _admin_limiter = anyio.CapacityLimiter(ADMIN_THREADS)
    return _admin_limiter


async def on_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ServingError):
        log.error("unexpected error", exc_info=exc, extra={"path": request.url.path})
        exc = ServingError(f"unexpected error: {type(exc).__name__}")
    return JSONResponse(exc.to_json(), status_code=exc.status)


http_app = Starlette(
    routes=[
        Route("/detect", detect, methods=["POST"]),
        Route("/admin/model", get_model, methods=["GET"]),
        Route("/admin/model", put_model, methods=["PUT"]),
    ],
    exception_handlers={ServingError: on_error, Exception: on_error},
)


# --- /detect/batch: request checks, then BentoML adaptive batching --------------------------


class RejectedImage(PILImage.Image):
    """Stands, in a batch, for an upload that is not an acceptable image: its item answers `error`."""

    def __init__(self, error: ServingError) -> None:
        super().__init__()
        self.error = error


def _open_upload(value: object) -> object:
    """Before BentoML's own image decoder: read the part, check its size, identify it (header only).

    Never raises: a bad part becomes a `RejectedImage`, which BentoML's decoder passes through, so
    that it fails its own item in `detect_batch`, not the request nor the batch it is merged into.
    """
    limit = _settings().max_image_bytes
    if not isinstance(value, UploadFile):  # BatchGate lets only file parts through
        return RejectedImage(BadRequest("expected an image file part", reason="bad_image"))
    value.file.seek(0)
    data = value.file.read(limit + 1)
    if len(data) > limit:
        return RejectedImage(PayloadTooLarge(f"image is over the {limit}-byte limit"))
    try:
        return open_image(data)
    except ServingError as error:
        return RejectedImage(error)


def _number(images: list[PILImage.Image]) -> list[PILImage.Image]:
    """Remember each image's index in its own request: merged batches lose it."""
    for index, image in enumerate(images):
        image.overseer_index = index  # type: ignore[attr-defined]
    return images


# The input of detect_batch: multipart field `images`, a list of images (BentoML batches on dim 0).
BatchImages = Annotated[list[Annotated[PILImage.Image, BeforeValidator(_open_upload)]], AfterValidator(_number)]


class BatchGate:
    """ASGI middleware for POST /detect/batch: the request-level checks, in our error contract.

    Before BentoML parses the request: multipart only (415), the body within
    OVERSEER_MAX_IMAGE_BYTES (413), an `images` field of at most 16 file parts (400/413), a model
    loaded (503). A refused request is counted once; everything after this is per image, in
    `detect_batch`. It also times every batch request, the wait for its batch included.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/detect/batch" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope, receive)
        runtime = None
        identity = None
        try:
            runtime = _worker_runtime()
            identity = runtime.model().desired.identity()
            body = await _check_batch(request, runtime.settings)
        except ServingError as error:
            if runtime is not None:
                runtime.metrics.request("detect_batch", identity, error.status, time.perf_counter() - started)
            await JSONResponse(error.to_json(), status_code=error.status)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, replay, send_status)
        finally:
            # 200: detect_batch counted each image. Anything else was answered by BentoML without
            # our function (overloaded, unparsable): counted once, like our own refusals.
            runtime.metrics.request(
                "detect_batch",
                identity,
                200 if status == 200 else status,
                time.perf_counter() - started,
                n=0 if status == 200 else 1,
            )


async def _check_batch(request: Request, settings: ServingSettings) -> bytes:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "multipart/form-data":
        raise UnsupportedMediaType(f"send multipart/form-data with the images in field 'images', not {media!r}")
    # One limit for the whole batch request: it is held in memory at once.
    body = await _read_body(request, settings.max_image_bytes + 64 * 1024, what="batch request body")
    async with _form_values(request, body, "images", max_files=BATCH_MAX_IMAGES) as values:
        for index, value in enumerate(values):
            # BentoML would download a text part as a URL: only file parts are images here
            if not isinstance(value, UploadFile):
                raise BadRequest(f"image {index}: send a file part (with a filename), not a text field")
    return body


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
            if isinstance(error, ServingError):
                message = error.message
            elif isinstance(error, OSError):
                message = describe_os_error(error)
            else:
                message = f"{type(error).__name__}: {error}"
            log.error("start-up failed", extra={"error": message, "worker": self.worker})  # noqa: TRY400 - one line, no traceback
            with contextlib.suppress(OSError):  # the reason is logged above; stopping matters more
                self.runtime.store.write_fatal(message)
            supervision.stop_supervisor(self.settings.supervisor_pid)

    def __is_ready__(self) -> bool:
        return self.runtime.ready

    @bentoml.api(  # type: ignore[untyped-decorator]
        route="/detect/batch",
        batchable=True,
        batch_dim=0,
        max_batch_size=BATCH_MAX_SIZE,
        max_latency_ms=BATCH_MAX_LATENCY_MS,
    )
    def detect_batch(self, images: BatchImages) -> list[dict[str, Any]]:
        """Every image of the requests BentoML merged: one answer per image, a bad one an error object.

        Nothing here raises: one client's bad image must not fail the requests merged with it.
        """
        metrics = self.runtime.metrics
        metrics.batch(len(images))
        answers: list[dict[str, Any]] = [{} for _ in images]
        try:
            model = self.runtime.model()
        except ServingError as error:
            for i, image in enumerate(images):
                answers[i] = _item_error(image, error)
            metrics.request("detect_batch", None, error.status, None, n=len(images))
            return answers
        identity = model.desired.identity()
        good: list[PILImage.Image] = []
        where: list[int] = []
        for i, image in enumerate(images):
            try:
                if isinstance(image, RejectedImage):
                    raise image.error
                good.append(finish_image(image, max_pixels=self.settings.max_image_pixels))
                where.append(i)
            except ServingError as error:
                answers[i] = _item_error(image, error)
                metrics.request("detect_batch", identity, error.status, None)
        if not good:
            return answers
        try:
            results = model.predict(good)
        except Exception as exc:  # every good image of the batch failed alike
            if not isinstance(exc, ServingError):
                log.exception("unexpected error", exc_info=exc, extra={"path": "/detect/batch"})
            failure = exc if isinstance(exc, ServingError) else ServingError(f"unexpected error: {type(exc).__name__}")
            for i in where:
                answers[i] = _item_error(images[i], failure)
            metrics.request("detect_batch", identity, failure.status, None, n=len(where))
            return answers
        for i, detections in zip(where, results, strict=True):
            answers[i] = {"detections": detections, "model": identity}
        metrics.request("detect_batch", identity, 200, None, n=len(where))
        return answers

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def shutdown(self) -> None:
        self.runtime.stop()


# `bentoml.service` made the class a bentoml.Service, which mypy does not see
YoloService.add_asgi_middleware(BatchGate)  # type: ignore[attr-defined]


# --- helpers --------------------------------------------------------------------------------


def _item_error(image: PILImage.Image, error: ServingError) -> dict[str, Any]:
    index = getattr(image, "overseer_index", "?")
    return ServingError(f"image {index}: {error.message}", reason=error.reason, status=error.status).to_json()


def _settings() -> ServingSettings:
    return _worker_runtime().settings


def _runtime(request: Request) -> Runtime:
    return _worker_runtime(request.app)


def _worker_runtime(app: Starlette = http_app) -> Runtime:
    runtime: Runtime | None = getattr(app.state, "runtime", None)
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


async def _multipart_image(request: Request, body: bytes) -> bytes:
    return (await _multipart_files(request, body, "image", max_files=1))[0]


async def _multipart_files(request: Request, body: bytes, field: str, *, max_files: int) -> list[bytes]:
    async with _form_values(request, body, field, max_files=max_files) as values:
        return [
            value.encode("latin-1", errors="replace") if isinstance(value, str) else await value.read()
            for value in values
        ]


@contextlib.asynccontextmanager
async def _form_values(
    request: Request, body: bytes, field: str, *, max_files: int
) -> AsyncIterator[list[str | UploadFile]]:
    """The parts named `field` of an already-read multipart body: at least one, at most max_files."""

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
        yield values
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
