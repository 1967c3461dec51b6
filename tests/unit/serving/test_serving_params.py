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


@pytest.mark.parametrize(
    ("custom_objects", "message"),
    [
        ({"max_det": True}, "customObjects.max_det: expected an integer, found boolean true"),
        ({"max_det": 10.5}, "customObjects.max_det: expected an integer, found number 10.5"),
        ({"classes": [True]}, "customObjects.classes[0]: expected a class id (integer) or class name (string)"),
        ({"agnostic_nms": "yes"}, "customObjects.agnostic_nms: expected a boolean, found string 'yes'"),
        ({"multi_label": 1}, "customObjects.multi_label: expected a boolean, found integer 1"),
        ({"conf": "0.5"}, "customObjects.conf: expected a number, found string '0.5'"),
        ({"iou": True}, "customObjects.iou: expected a number, found boolean true"),
        ({"resize_resolution": "640"}, "customObjects.resize_resolution: expected an integer or [height, width]"),
        ({"resize_resolution": [480, "6"]}, "customObjects.resize_resolution: expected an integer or [height, width]"),
    ],
)
def test_a_wrong_type_is_refused_never_coerced(custom_objects: dict[str, object], message: str) -> None:
    # Coercing would serve a value nobody wrote (max_det: true -> 1): "results silently change".
    with pytest.raises(InvalidConfig) as caught:
        from_custom_objects(custom_objects)
    assert caught.value.message.startswith(message), caught.value.message
    assert caught.value.status == 422


def test_an_integer_is_accepted_for_a_number() -> None:
    params = from_custom_objects({"conf": 1, "iou": 0})
    assert (params.conf, params.iou) == (1.0, 0.0)
    assert isinstance(params.predict_kwargs(None)["conf"], float)


def test_a_misspelt_parameter_gets_a_suggestion() -> None:
    with pytest.raises(InvalidConfig, match=r"customObjects\.confidence: .*did you mean 'conf'\?"):
        from_custom_objects({"confidence": 0.3})
