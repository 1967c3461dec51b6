"""Environment that keeps BentoML and Ultralytics off the network and Ultralytics on safe loading.

Both libraries read these variables when they are first imported, so `apply()` must run before
either is imported: `overseer serve` calls it first thing (worker processes inherit the
environment) and the worker calls it again before it imports Ultralytics.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# Values are forced, not defaulted: an inherited ULTRALYTICS_SAFE_LOAD=0 must not re-enable
# full unpickling.
FORCED = {
    "YOLO_OFFLINE": "1",  # no DNS look-ups or asset downloads at import or predict
    "YOLO_AUTOINSTALL": "false",  # never pip-install a module a checkpoint names
    "YOLO_VERBOSE": "false",
    "ULTRALYTICS_SAFE_LOAD": "1",  # torch.load(weights_only=True) + Ultralytics' class allow-list
    "BENTOML_DO_NOT_TRACK": "true",  # no usage analytics
    "HF_HUB_OFFLINE": "1",
}


def apply() -> None:
    os.environ.update(FORCED)


def check_ultralytics() -> None:
    """Refuse to go on if Ultralytics was imported before `apply()` and so loads unsafely."""
    tasks: Any = importlib.import_module("ultralytics.nn.tasks")
    settings: Any = importlib.import_module("ultralytics.utils").SETTINGS

    if not (tasks.SAFE_LOAD and tasks._SafeLoad.SUPPORTED):
        raise RuntimeError(
            "Ultralytics safe loading is not active (ULTRALYTICS_SAFE_LOAD unset at import, or torch < 2.6)"
        )
    # Ultralytics patches PIL.Image.open so that an unidentified image triggers a pip install of a
    # HEIF plugin. Undo it: a bad upload must be a 400, never an install attempt.
    patches: Any = importlib.import_module("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    if original is not None:
        pil_image: Any = importlib.import_module("PIL.Image")
        pil_image.open = original
    # `sync` would send usage events; settings live in a file shared with other tools.
    if settings.get("sync"):
        settings.update({"sync": False})
