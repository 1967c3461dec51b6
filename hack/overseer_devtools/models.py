"""The trained toy detectors of the tests, the benchmark and the demo, cached by their recipe.

    python -m overseer_devtools.models [NAME ...]     # `make models`: NAME PATH sha256:HEX per model
    shapes_model("shapes-v1")                        # TrainedModel(name, path, digest, ...)

YOLOv8n networks trained here, on the CPU, on generated pictures of red squares and blue circles
(`overseer_devtools.shapes`), and models derived from them that are wrong on purpose:

- `shapes-v1`, `shapes-v2`: two independent good detectors of the same classes (a data set and a
  seed of their own each; different digests).
- `shapes-swapped`: `shapes-v1` with its class-score channels swapped. Loads, serves, has the same
  class names, and calls every square a circle and every circle a square.
- `shapes-blind`: `shapes-v1` with every class score forced to ~0. Loads, serves, passes the smoke
  inference, and never finds anything.
- `shapes-truncated`: the first half of `shapes-v1`'s file, a cut upload: does not load.

Each model is cached as `<cache>/models/<name>-<key>.pt` (and a `.json` beside it saying what
it is and what it scored), where `<key>` hashes its recipe: the settings below, the source of the
data generator and the trainer, the versions of the libraries that shape the weights, and the
parent's key for a derived model. A change to any of them makes a new model; a second run trains
nothing. The cache is `$OVERSEER_CACHE/models`, by default `~/.cache/schema-overseer/models`.

Several processes may ask at once (two test sessions, `make models` beside a test run): a model is
made under an exclusive `flock` of its own, by one of them, in a temporary file that gets its
final name with an atomic rename; the `.json` is renamed last, so a model exists only once both
files do. A file that no longer matches its recorded digest is made again.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overseer.api.model_document import sha256_file

from overseer_devtools import shapes, training

IMGSZ = 160  # the pictures' size: the models are trained, and should be served, at this resolution

# How each model is made. `threads` is fixed so that a machine with more cores sums in the same
# order (and trains the same weights, within float reproducibility) - about a minute on 2 cores.
RECIPES: dict[str, dict[str, Any]] = {
    "shapes-v1": {
        "operation": "train",
        "architecture": "yolov8n.yaml",
        "imgsz": IMGSZ,
        "threads": 2,
        "data": {"seed": 1, "train": 96, "val": 16},
        "train": {"epochs": 30, "batch": 16, "seed": 1, "deterministic": True},
    },
    "shapes-v2": {
        "operation": "train",
        "architecture": "yolov8n.yaml",
        "imgsz": IMGSZ,
        "threads": 2,
        "data": {"seed": 2, "train": 96, "val": 16},
        "train": {"epochs": 30, "batch": 16, "seed": 2, "deterministic": True},
    },
    "shapes-swapped": {"operation": "swap_classes", "from": "shapes-v1", "imgsz": IMGSZ},
    "shapes-blind": {"operation": "blind", "from": "shapes-v1", "imgsz": IMGSZ},
    "shapes-truncated": {"operation": "truncate", "from": "shapes-v1"},
}
NAMES = tuple(RECIPES)
CLASSES = shapes.CLASSES

# Libraries whose version can change the pictures or the weights.
LIBRARIES = ("ultralytics", "torch", "numpy", "pillow")
TRAIN_TIMEOUT_S = 30 * 60  # a safety net: training takes about a minute on 2 idle cores
LOCK_TIMEOUT_S = 45 * 60  # waiting for another process that makes the same model


@dataclass(frozen=True)
class TrainedModel:
    name: str
    path: Path
    digest: str  # sha256:<hex> of the file
    map50: float | None  # on 64 held-out pictures at IMGSZ; None for weights that do not load
    seconds: float  # how long making it took (training, for a trained one)

    @property
    def uri(self) -> str:
        return f"file://{self.path}"


def cache_root() -> Path:
    """`$OVERSEER_CACHE/models` (the project's cache, as hack/controlplane/build.sh has it)."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "schema-overseer"
    return Path(os.environ.get("OVERSEER_CACHE") or default) / "models"


def shapes_model(name: str, *, cache: Path | None = None, log: bool = True) -> TrainedModel:
    """The model `name` (see NAMES), made first if the cache does not have it."""
    if name not in RECIPES:
        raise KeyError(f"no model {name!r}; known: {', '.join(NAMES)}")
    folder = cache or cache_root()
    recipe = RECIPES[name]
    parent = shapes_model(recipe["from"], cache=folder, log=log) if "from" in recipe else None
    key = recipe_key(name, parent)
    found = _cached(folder, name, key)
    if found is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / f".{name}-{key}.lock"):
        found = _cached(folder, name, key)  # made by another process while this one waited
        if found is not None:
            return found
        for stale in folder.glob(f".{name}-{key}.*"):  # a folder left by a killed maker (it held this lock)
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        return _make(folder, name, key, parent, log=log)


def recipe_key(name: str, parent: TrainedModel | None = None) -> str:
    """16 hex digits of sha256 over everything that shapes the model's bytes."""
    sources = {module.__name__: _source_digest(module.__file__) for module in (shapes, training)}
    versions = {lib: importlib.metadata.version(lib) for lib in LIBRARIES}
    what = {
        "recipe": RECIPES[name],
        "sources": sources,
        "versions": versions,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "parent": parent.digest if parent else None,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _source_digest(path: str | None) -> str:
    """The module's code, without comments, formatting or docstrings: editing prose retrains nothing."""
    tree = ast.parse(Path(str(path)).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined,index]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def _cached(folder: Path, name: str, key: str) -> TrainedModel | None:
    meta_path, weights = folder / f"{name}-{key}.json", folder / f"{name}-{key}.pt"
    try:
        meta = json.loads(meta_path.read_text())
        digest = sha256_file(weights)
    except (OSError, ValueError):
        return None
    if digest != meta.get("digest"):
        return None  # changed or damaged since it was made: make it again
    return TrainedModel(name, weights, digest, meta.get("map50"), float(meta.get("seconds", 0.0)))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (released by the kernel if this process dies)."""
    with path.open("a") as f:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} still locked after {LOCK_TIMEOUT_S} s") from None
                time.sleep(0.5)  # another process is making this model: poll its lock, bounded above
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _make(folder: Path, name: str, key: str, parent: TrainedModel | None, *, log: bool) -> TrainedModel:
    recipe = RECIPES[name]
    final = folder / f"{name}-{key}.pt"
    log_path = folder / f"{name}-{key}.log"
    config_dir = folder / "ultralytics"  # YOLO_CONFIG_DIR: settings and font of the training runs
    if log:
        what = "training" if recipe["operation"] == "train" else f"deriving from {recipe['from']}:"
        print(f"models: {what} {name} (key {key}; log {log_path})", file=sys.stderr, flush=True)
    # Made under its final file name (torch.save records it inside the archive), in a folder of
    # this process's own, then renamed into place.
    with tempfile.TemporaryDirectory(prefix=f".{name}-{key}.", dir=folder) as tmp_name:
        tmp = Path(tmp_name)
        measured = _run_maker(recipe, tmp / final.name, parent, log_path, config_dir)
        digest = sha256_file(tmp / final.name)
        meta = {"name": name, "key": key, "digest": digest, "recipe": recipe, "parent": parent and parent.digest}
        meta |= {"versions": {lib: importlib.metadata.version(lib) for lib in LIBRARIES}, **measured}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp / final.name, final)
        os.replace(tmp / "meta.json", final.with_suffix(".json"))  # last: the model exists from here on
    made = TrainedModel(name, final, digest, measured.get("map50"), measured["seconds"])
    if log:
        quality = "does not load" if made.map50 is None else f"mAP50 {made.map50:.3f}"
        print(f"models: {name} made in {made.seconds:.0f} s ({quality})", file=sys.stderr, flush=True)
    return made


def _run_maker(
    recipe: dict[str, Any], out: Path, parent: TrainedModel | None, log_path: Path, config_dir: Path
) -> dict[str, Any]:
    """Run overseer_devtools.training in a process of its own, offline; return what it measured."""
    env = {
        **os.environ,
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "false",
        "YOLO_CONFIG_DIR": str(config_dir),
        "ULTRALYTICS_SAFE_LOAD": "true",  # the quality check loads the weights as the server does
        "OMP_NUM_THREADS": str(recipe.get("threads", 2)),
        "OVERSEER_DEVTOOLS_PARENT_PID": str(os.getpid()),  # the maker dies with this process
        # the folder holding overseer_devtools, whatever put it on this process's sys.path
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "overseer_devtools.training", json.dumps(recipe), str(out)]
    if parent is not None:
        command.append(str(parent.path))
    with log_path.open("w") as log:
        proc = subprocess.run(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=TRAIN_TIMEOUT_S, check=False
        )
    output = log_path.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"making {out.name} failed (exit {proc.returncode}); end of {log_path}:\n{output[-3000:]}")
    measured: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Make (or find in the cache) the toy detectors; print NAME PATH DIGEST."
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"models to make (default: all of {', '.join(NAMES)})")
    parser.add_argument("--cache", type=Path, help="the cache folder (default: ~/.cache/schema-overseer/models)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown model {', '.join(unknown)}; known: {', '.join(NAMES)}")
    for name in args.names or NAMES:
        model = shapes_model(name, cache=args.cache)
        print(f"{model.name} {model.path} {model.digest}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
