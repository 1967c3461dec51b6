"""customObjects -> Ultralytics predict arguments."""

from __future__ import annotations

import pytest
from overseer_serving.errors import InvalidConfig
from overseer_serving.params import InferenceParams, from_custom_objects

NAMES = {0: "cat", 1: "dog", 2: "bird"}


def test_defaults_are_ultralytics_defaults() -> None:
    kwargs = InferenceParams().predict_kwargs(None)
    assert kwargs == {"imgsz": 640, "conf": 0.25, "iou": 0.7, "max_det": 300, "classes": None, "agnostic_nms": False}


def test_mapping_of_every_key() -> None:
    params = from_custom_objects(
        {
            "resize_resolution": [480, 640],
            "conf": 0.5,
            "iou": 0.4,
            "max_det": 10,
            "classes": ["dog", 2],
            "agnostic_nms": True,
            "multi_label": True,
        }
    )
    assert params.multi_label is True
    assert params.predict_kwargs(params.class_ids(NAMES)) == {
        "imgsz": [480, 640],
        "conf": 0.5,
        "iou": 0.4,
        "max_det": 10,
        "classes": [1, 2],
        "agnostic_nms": True,
    }


@pytest.mark.parametrize(
    ("custom_objects", "message"),
    [
        ({"conf": 1.5}, r"customObjects\.conf: "),
        ({"resize_resolution": 8}, r"customObjects\.resize_resolution: .*between 32 and 8192"),
        ({"max_det": 0}, r"customObjects\.max_det"),
        ({"confidence": 0.3}, r"customObjects\.confidence: this server does not implement"),
    ],
)
def test_values_it_cannot_honour_are_refused(custom_objects: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        from_custom_objects(custom_objects)


def test_classes_must_exist_in_the_model() -> None:
    with pytest.raises(InvalidConfig, match="'zebra' is not a class name"):
        from_custom_objects({"classes": ["zebra"]}).class_ids(NAMES)
    with pytest.raises(InvalidConfig, match="class id 7 is not in this model"):
        from_custom_objects({"classes": [7]}).class_ids(NAMES)
