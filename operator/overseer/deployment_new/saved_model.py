"""The saved model a manifest is made from: a BentoML model in the local store, or a weights file.

From BentoML: name and version from the tag, labels and metadata from model.yaml, custom objects
from the model (BentoML unpickles them: the store is the user's own), and the weights file inside
the model folder, whose bytes give the digest. BentoML (the serving extra) is imported only here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overseer.api.model_document import sha256_file
from overseer.deployment_new.values import ValuesError, to_json_value

SERVING_EXTRA_HINT = "pip install 'schema-overseer[serving]'"
# BentoML's own files in a model folder; everything else was saved by the training job.
BENTO_OWN_FILES = frozenset({"model.yaml", "custom_objects.pkl"})
WEIGHT_SUFFIXES = (".pt", ".pth", ".onnx", ".safetensors", ".torchscript", ".ckpt", ".bin", ".engine", ".tflite")


class SavedModelError(Exception):
    """The saved model cannot be read; one line saying why (exit 2)."""


@dataclass(frozen=True)
class SavedModel:
    name: str
    version: str
    weights: Path
    digest: str
    source: str
    """`bento model cat_recognition:3x4...` or `weights file path/model.pt`, for messages."""
    labels: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    custom_objects: dict[str, Any] = field(default_factory=dict)


def from_weights(path: str, *, name: str, version: str) -> SavedModel:
    weights = Path(path)
    if not weights.is_file():
        raise SavedModelError(f"--weights {path}: {'not a file' if weights.exists() else 'no such file'}")
    try:
        digest = sha256_file(weights)
    except OSError as error:
        raise SavedModelError(f"--weights {path}: cannot read: {error.strerror or error}") from error
    return SavedModel(name=name, version=version, weights=weights, digest=digest, source=f"weights file {path}")


def from_bento(tag: str, *, weights_name: str | None = None) -> SavedModel:
    """The BentoML model `tag` (`name` for the latest version, or `name:version`)."""
    try:
        import bentoml
    except ImportError as error:
        raise SavedModelError(f"--from-bento needs BentoML: {SERVING_EXTRA_HINT}") from error
    try:
        model: Any = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as error:
        raise SavedModelError(f"--from-bento {tag}: {error}") from error
    except (ValueError, bentoml.exceptions.BentoMLException) as error:
        raise SavedModelError(f"--from-bento {tag}: {error}") from error
    where = f"bento model {model.tag}"
    try:
        custom_objects = model.custom_objects
    except Exception as error:  # unpickling runs the saver's code: any failure is possible
        raise SavedModelError(f"{where}: cannot load its custom objects: {type(error).__name__}: {error}") from error
    folder = Path(model.path)
    weights = _weights_file(folder, weights_name, where)
    try:
        labels = to_json_value(dict(model.info.labels or {}), "labels")
        metadata = to_json_value(dict(model.info.metadata or {}), "metadata")
        custom = to_json_value(dict(custom_objects or {}), "customObjects")
    except ValuesError as error:
        raise SavedModelError(f"{where}: {error}") from error
    return SavedModel(
        name=str(model.tag.name),
        version=str(model.tag.version),
        weights=weights,
        digest=sha256_file(weights),
        source=where,
        labels=labels,
        metadata=metadata,
        custom_objects=custom,
    )


def _weights_file(folder: Path, name: str | None, where: str) -> Path:
    """The one weights file of the model folder, or the one `--bento-file` names."""
    files = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() not in BENTO_OWN_FILES
    )
    if name is not None:
        if name not in files:
            raise SavedModelError(f"{where}: no file {name!r} in the model ({_listing(files)})")
        return folder / name
    candidates = [f for f in files if f.lower().endswith(WEIGHT_SUFFIXES)] or files
    if len(candidates) == 1:
        return folder / candidates[0]
    if not candidates:
        raise SavedModelError(f"{where}: the model holds no weights file (only BentoML's own files)")
    raise SavedModelError(
        f"{where}: several files could be the weights ({_listing(candidates)}); pick one with --bento-file NAME"
    )


def _listing(files: list[str]) -> str:
    if not files:
        return "it holds no files of its own"
    shown = ", ".join(files[:10])
    return f"files: {shown}{', ...' if len(files) > 10 else ''}"
