"""Environment that keeps BentoML and Ultralytics off the network and Ultralytics on safe loading.

Both libraries read these variables when they are first imported, so `apply()` must run before
either is imported: `overseer serve` calls it first thing (worker processes inherit the
environment) and the worker calls it again before it imports Ultralytics.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# Safe loading needs both: Ultralytics' opt-in restricted loader (ULTRALYTICS_SAFE_LOAD, added in
# 8.4.67) and torch's checkpoint global scan (torch.serialization.get_unsafe_globals_in_checkpoint,
# torch 2.6). Without the latter, newer Ultralytics silently degrade to a full unpickle.
MIN_ULTRALYTICS = "8.4.67"
MIN_TORCH = "2.6"

# Values are forced, not defaulted: an inherited ULTRALYTICS_SAFE_LOAD=0 must not re-enable
# full unpickling. "true", not "1": the first Ultralytics with the flag (8.4.67) accepts only "true".
FORCED = {
    "YOLO_OFFLINE": "1",  # no DNS look-ups or asset downloads at import or predict
    "YOLO_AUTOINSTALL": "false",  # never pip-install a module a checkpoint names
    "YOLO_VERBOSE": "false",
    "ULTRALYTICS_SAFE_LOAD": "true",  # torch.load(weights_only=True) + Ultralytics' class allow-list
    "BENTOML_DO_NOT_TRACK": "true",  # no usage analytics
    "HF_HUB_OFFLINE": "1",
}


class UnsafeLoader(RuntimeError):
    """The installed Ultralytics/torch would not load weights with the restricted loader."""


def apply() -> None:
    os.environ.update(FORCED)


def check_ultralytics() -> None:
    """Refuse to go on unless Ultralytics will load checkpoints with its restricted loader.

    Raises UnsafeLoader naming the reason: Ultralytics or torch too old (attributes are looked up
    with defaults, so an old install is a clear refusal, never an AttributeError), or the flag
    not read at import because Ultralytics was imported before `apply()`.
    """
    tasks: Any = importlib.import_module("ultralytics.nn.tasks")
    safe_load = getattr(tasks, "SAFE_LOAD", None)
    loader = getattr(tasks, "_SafeLoad", None)
    if safe_load is None or loader is None:
        version = getattr(importlib.import_module("ultralytics"), "__version__", "?")
        raise UnsafeLoader(
            f"Ultralytics {version} has no restricted checkpoint loader; "
            f"install ultralytics>={MIN_ULTRALYTICS} (pip install 'schema-overseer[serving]')"
        )
    torch: Any = importlib.import_module("torch")
    if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint") or not getattr(loader, "SUPPORTED", True):
        raise UnsafeLoader(
            f"torch {torch.__version__} is too old for restricted checkpoint loading "
            f"(Ultralytics would fall back to a full unpickle); install torch>={MIN_TORCH}"
        )
    if not safe_load:
        raise UnsafeLoader(
            "Ultralytics safe loading is not active (ULTRALYTICS_SAFE_LOAD was not set when Ultralytics was imported)"
        )
    # Ultralytics patches PIL.Image.open so that an unidentified image triggers a pip install of a
    # HEIF plugin. Undo it: a bad upload must be a 400, never an install attempt.
    patches: Any = importlib.import_module("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    if original is not None:
        pil_image: Any = importlib.import_module("PIL.Image")
        pil_image.open = original
    # `sync` would send usage events; settings live in a file shared with other tools.
    settings: Any = importlib.import_module("ultralytics.utils").SETTINGS
    if settings.get("sync"):
        settings.update({"sync": False})
