"""customObjects -> Ultralytics predict arguments.

The serving code honours exactly the keys below. A key it does not know is refused, not ignored:
a model that needs a parameter this server does not implement must not be served as if it had
been honoured (the "new model, new config" failure this project exists to stop).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from overseer.schema import hints
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


# What each key accepts, in the words of the error message.
EXPECTED = {
    "resize_resolution": "an integer or [height, width] integers",
    "conf": "a number",
    "iou": "a number",
    "max_det": "an integer",
    "classes": "a list of class ids (integers) or class names (strings)",
    "agnostic_nms": "a boolean",
    "multi_label": "a boolean",
}


class InferenceParams(BaseModel):
    """Validated serving parameters; defaults are Ultralytics' own predict defaults.

    Strict: a value of the wrong type is refused, never coerced (`max_det: true` is not 1,
    `agnostic_nms: "yes"` is not true, `conf: "0.5"` is not 0.5) - a silently changed value is the
    "results silently change" failure. The one allowance is an integer for a number (`conf: 1`),
    which JSON and YAML cannot tell apart from 1.0. JSON arrays are accepted where a tuple is
    meant.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    resize_resolution: int | tuple[int, int] = 640
    conf: float = Field(0.25, ge=0.0, le=1.0)
    iou: float = Field(0.7, ge=0.0, le=1.0)
    max_det: int = Field(300, ge=1, le=10_000)
    classes: tuple[int | str, ...] | None = None
    agnostic_nms: bool = False
    multi_label: bool = False

    @field_validator("resize_resolution", "classes", mode="before")
    @classmethod
    def _array_is_a_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("conf", "iou", mode="before")
    @classmethod
    def _integer_is_a_number(cls, value: Any) -> Any:
        # bool is an int in Python, but `conf: true` is a type error, not 1.0.
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

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
        problems: dict[str, str] = {}  # path -> message; a union reports one error per member: keep the first
        for e in error.errors(include_url=False):
            path, message = _describe(e, custom_objects)
            problems.setdefault(path, message)
        raise InvalidConfig("; ".join(f"{path}: {message}" for path, message in problems.items())) from None


def _describe(error: Any, custom_objects: Mapping[str, Any]) -> tuple[str, str]:
    """(customObjects.path, message) for one pydantic error."""
    key = str(error["loc"][0])
    index = next((p for p in error["loc"][1:] if isinstance(p, int)), None) if key == "classes" else None
    path = hints.field_path("customObjects", [key] if index is None else [key, index])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        hint = hints.most_similar(key, MAPPING)
        did_you_mean = f"did you mean {hint!r}? " if hint else ""
        known = ", ".join(sorted(MAPPING))
        return path, f"this server does not implement this parameter ({did_you_mean}it honours: {known})"
    if kind.endswith(("_type", "_parsing")):
        if index is not None:
            entry = custom_objects["classes"][index]
            return path, f"expected a class id (integer) or class name (string), found {hints.found(entry)}"
        return path, f"expected {EXPECTED.get(key, 'another type')}, found {hints.found(custom_objects.get(key))}"
    if kind == "value_error":
        return path, str(ctx.get("error", error["msg"]))
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return path, f"expected a value {bounds[kind]} {limit}, found {hints.show(error.get('input'))}"
    return path, f"expected {EXPECTED.get(key, 'another value')}, found {hints.show(custom_objects.get(key))}"
