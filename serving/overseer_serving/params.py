"""customObjects -> Ultralytics predict arguments.

The serving code honours exactly the keys below. A key it does not know is refused, not ignored:
a model that needs a parameter this server does not implement must not be served as if it had
been honoured (the "new model, new config" failure this project exists to stop).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from overseer_serving.errors import InvalidConfig

# customObjects key -> Ultralytics predict argument (docs/serving.md has the table).
MAPPING = {
    "resize_resolution": "imgsz",
    "conf": "conf",
    "iou": "iou",
    "max_det": "max_det",
    "classes": "classes",
    "agnostic_nms": "agnostic_nms",
    "multi_label": "multi_label (NMS option, via a predictor subclass)",
}


class InferenceParams(BaseModel):
    """Validated serving parameters; defaults are Ultralytics' own predict defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    resize_resolution: int | tuple[int, int] = 640
    conf: float = Field(0.25, ge=0.0, le=1.0)
    iou: float = Field(0.7, ge=0.0, le=1.0)
    max_det: int = Field(300, ge=1, le=10_000)
    classes: tuple[int | str, ...] | None = None
    agnostic_nms: bool = False
    multi_label: bool = False

    @field_validator("resize_resolution")
    @classmethod
    def _resolution(cls, value: int | tuple[int, int]) -> int | tuple[int, int]:
        sides = (value,) if isinstance(value, int) else value
        for side in sides:
            if not 32 <= side <= 8192:
                raise ValueError(f"each side must be between 32 and 8192 pixels, got {side}")
        return value

    def predict_kwargs(self, class_ids: list[int] | None) -> dict[str, Any]:
        imgsz = self.resize_resolution
        return {
            "imgsz": list(imgsz) if isinstance(imgsz, tuple) else imgsz,
            "conf": self.conf,
            "iou": self.iou,
            "max_det": self.max_det,
            "classes": class_ids,
            "agnostic_nms": self.agnostic_nms,
        }

    def class_ids(self, names: Mapping[int, str]) -> list[int] | None:
        """`classes` as model class ids; entries may be ids or class names of this model."""
        if self.classes is None:
            return None
        by_name = {name: idx for idx, name in names.items()}
        ids: list[int] = []
        for entry in self.classes:
            if isinstance(entry, int) and not isinstance(entry, bool):
                if entry not in names:
                    raise InvalidConfig(
                        f"customObjects.classes: class id {entry} is not in this model ({len(names)} classes)"
                    )
                ids.append(entry)
            elif entry in by_name:
                ids.append(by_name[entry])
            else:
                raise InvalidConfig(f"customObjects.classes: {entry!r} is not a class name of this model")
        return ids


def from_custom_objects(custom_objects: Mapping[str, Any]) -> InferenceParams:
    try:
        return InferenceParams.model_validate(dict(custom_objects))
    except ValidationError as error:
        raise InvalidConfig("; ".join(_describe(e) for e in error.errors())) from None


def _describe(error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    path = "customObjects." + ".".join(loc[:1]) + "".join(f"[{p}]" for p in loc[1:] if p.isdigit())
    if error["type"] == "extra_forbidden":
        known = ", ".join(sorted(MAPPING))
        return f"{path}: this server does not implement this parameter (it honours: {known})"
    return f"{path}: {error['msg']}"
