"""A loaded YOLO detector with the parameters it serves with.

Ultralytics is imported here, inside functions, so that importing the service module (which
the BentoML supervisor does too) does not pull in torch.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overseer_serving import offline
from overseer_serving.document import Desired
from overseer_serving.errors import LoadFailed, ServingError

if TYPE_CHECKING:
    from PIL.Image import Image


class LoadedModel:
    """One model, ready to serve. Immutable after `load`: a swap makes a new one."""

    def __init__(self, desired: Desired, yolo: Any, weights: Path, class_ids: list[int] | None) -> None:
        self.desired = desired
        self.weights = weights
        self.names: dict[int, str] = {int(k): str(v) for k, v in yolo.names.items()}
        self._yolo = yolo
        self._kwargs = desired.params.predict_kwargs(class_ids)
        self._predictor = _multi_label_predictor() if desired.params.multi_label else None
        # An Ultralytics model object is not safe to call from two threads at once.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, desired: Desired, weights: Path, *, device: str) -> LoadedModel:
        """Load verified weights with Ultralytics' weights_only loader, then warm up and smoke-test."""
        offline.apply()
        try:
            offline.check_ultralytics()
        except Exception as error:  # too old, not importable, flag not active: all mean "not safe to load"
            raise LoadFailed(f"refusing to load {desired.digest}: {_one_line(error)}", reason="unsafe_loader") from None
        from ultralytics import YOLO  # type: ignore[attr-defined]

        try:
            yolo = YOLO(str(weights), task="detect")
            yolo.to(device)
        except Exception as error:  # any loader failure is the same condition to the caller
            raise LoadFailed(f"weights {desired.digest} did not load: {_one_line(error)}") from None
        if yolo.task != "detect":
            raise LoadFailed(f"weights {desired.digest} hold a {yolo.task!r} model; this server serves 'detect'")
        class_ids = desired.params.class_ids(yolo.names)
        model = cls(desired, yolo, weights, class_ids)
        model.warm_up()
        return model

    def warm_up(self) -> None:
        """First predict builds the predictor and allocates buffers (~1.5 s on CPU); then smoke-test."""
        probe = synthetic_image()
        try:
            self.predict([probe])
            results = self.predict([probe, probe])
        except ServingError:
            raise
        except Exception as error:
            raise LoadFailed(f"smoke inference failed: {_one_line(error)}", reason="smoke_failed") from None
        if len(results) != 2:
            raise LoadFailed(f"smoke inference returned {len(results)} results for 2 images", reason="smoke_failed")
        for detection in (d for r in results for d in r):
            box = detection["box"]
            if not (0.0 <= detection["confidence"] <= 1.0 and all(math.isfinite(v) for v in box)):
                raise LoadFailed(f"smoke inference produced a malformed detection {detection}", reason="smoke_failed")

    def predict(self, images: list[Image]) -> list[list[dict[str, Any]]]:
        with self._lock:
            results = self._yolo.predict(images, verbose=False, predictor=self._predictor, **self._kwargs)
        return [self._detections(r) for r in results]

    def _detections(self, result: Any) -> list[dict[str, Any]]:
        boxes = result.boxes
        out = []
        for xyxy, conf, cls in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), strict=True):
            class_id = int(cls)
            out.append(
                {
                    "class_id": class_id,
                    "class_name": self.names.get(class_id, str(class_id)),
                    "confidence": round(float(conf), 5),
                    "box": [round(float(v), 2) for v in xyxy],
                }
            )
        return out


def synthetic_image() -> Image:
    """A deterministic 640x480 noise image for warm-up and smoke inference."""
    import numpy as np
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    return PILImage.fromarray(rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8), mode="RGB")


_PREDICTOR: type | None = None


def _multi_label_predictor() -> type:
    """DetectionPredictor whose NMS keeps every class above `conf` per box (Ultralytics' NMS
    supports `multi_label`, but its predictor does not pass it through)."""
    global _PREDICTOR  # noqa: PLW0603 - built once, after Ultralytics is importable
    if _PREDICTOR is not None:
        return _PREDICTOR
    from ultralytics.models.yolo.detect import DetectionPredictor
    from ultralytics.utils import nms, ops

    class MultiLabelDetectionPredictor(DetectionPredictor):  # type: ignore[misc]
        def postprocess(self, preds: Any, img: Any, orig_imgs: Any, **kwargs: Any) -> Any:
            preds = nms.non_max_suppression(
                preds,
                self.args.conf,
                self.args.iou,
                self.args.classes,
                self.args.agnostic_nms,
                multi_label=True,
                max_det=self.args.max_det,
                end2end=getattr(self.model, "end2end", False),
            )
            if not isinstance(orig_imgs, list):
                orig_imgs = ops.convert_torch2numpy_batch(orig_imgs)[..., ::-1]
            return self.construct_results(preds, img, orig_imgs, **kwargs)  # type: ignore[no-untyped-call]

    _PREDICTOR = MultiLabelDetectionPredictor
    return _PREDICTOR


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    # Ultralytics messages carry emoji and advice about downloading official models: keep the gist.
    return text.replace("ERROR ❌️ ", "")[:400]
