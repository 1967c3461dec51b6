"""Make one shapes detector - train it, or derive it from a trained one - offline, in a process of its own.

    python -m overseer_devtools.training RECIPE_JSON OUT.pt [PARENT.pt]

`overseer_devtools.models` runs this as a subprocess, for three reasons: Ultralytics reads
YOLO_CONFIG_DIR (its settings file and runs folder) once, at import, and the caller may have
imported it already; training changes global torch state (seeds, thread count, deterministic
algorithms); and a subprocess can be given a clean, offline environment.

Nothing here reaches the network. The environment says so (YOLO_OFFLINE, no integrations in the
settings file), and `_forbid_network` makes sure: any connection or name look-up outside loopback
fails with OSError (which Ultralytics treats as "offline") and is reported on stderr. The one
look-up known to happen otherwise is Ultralytics' font check (`check_font("Arial.ttf")`, a HEAD
request to GitHub even when offline): a bundled matplotlib font is put where it looks first.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from overseer_serving import supervision

from overseer_devtools import scoring, shapes

# Ultralytics settings for the training process: everything that could phone home is off (the
# keys this Ultralytics has; the set changes between releases).
SETTINGS_OFF = ("sync", "clearml", "comet", "dvc", "hub", "mlflow", "neptune", "raytune", "tensorboard", "wandb")


def make(recipe: dict[str, Any], out: Path, parent: Path | None) -> dict[str, Any]:
    """Make the model `recipe` describes into `out`; return what was measured."""
    started = time.monotonic()
    operation = recipe["operation"]
    if operation == "train":
        measured = train(recipe, out)
    elif parent is None:
        raise ValueError(f"{operation!r} needs the weights it starts from")
    elif operation == "truncate":  # the first half of the file: an upload cut short
        data = parent.read_bytes()
        out.write_bytes(data[: len(data) // 2])
        return {"seconds": round(time.monotonic() - started, 2), "map50": None}
    else:
        measured = derive(operation, parent, out)
    measured["map50"] = round(held_out_map50(out, recipe["imgsz"]), 4)
    measured["seconds"] = round(time.monotonic() - started, 2)
    usage = resource.getrusage(resource.RUSAGE_SELF)  # CPU time: comparable between busy and idle machines
    measured["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 1)
    return measured


def train(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    """Generate the recipe's data set and train on it; write clean weights to `out`."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shapes-train-", dir=out.parent) as tmp_name:
        tmp = Path(tmp_name)
        data = recipe["data"]
        data_yaml = shapes.write_dataset(tmp / "data", seed=data["seed"], train=data["train"], val=data["val"])
        generated = time.monotonic()
        torch: Any = importlib.import_module("torch")
        torch.set_num_threads(recipe["threads"])
        ultralytics: Any = importlib.import_module("ultralytics")
        settings = importlib.import_module("ultralytics.utils").SETTINGS
        off = {key: False for key in SETTINGS_OFF if key in settings}
        folders = {"runs_dir": tmp / "runs", "datasets_dir": tmp / "data", "weights_dir": tmp / "weights"}
        settings.update({**off, **{key: str(path) for key, path in folders.items()}})
        model = ultralytics.YOLO(recipe["architecture"])  # bundled yaml: a randomly initialised network
        model.train(
            data=str(data_yaml),
            project=str(tmp / "runs"),
            name="train",
            exist_ok=True,
            device="cpu",
            workers=0,
            pretrained=False,
            amp=False,  # the AMP check would download a model
            plots=False,
            val=False,  # quality is measured on held-out pictures below, not the training loop's val split
            imgsz=recipe["imgsz"],
            **recipe["train"],
        )
        trained = time.monotonic()
        _save_clean(tmp / "runs" / "train" / "weights" / "last.pt", out, recipe)
    return {"generate_seconds": round(generated - started, 2), "train_seconds": round(trained - generated, 2)}


def _save_clean(trained: Path, out: Path, recipe: dict[str, Any]) -> None:
    """Keep the network and what loading needs; drop what would make the bytes differ from run to
    run or leak this machine (date, git state, temporary paths in the training arguments)."""
    torch: Any = importlib.import_module("torch")
    checkpoint = torch.load(trained, map_location="cpu", weights_only=False)  # written just now, by us
    model = checkpoint["model"]
    model.args = {"task": "detect", "imgsz": recipe["imgsz"]}
    clean = {key: checkpoint[key] for key in ("version", "license", "docs")}
    clean |= {"date": "", "epoch": -1, "model": model, "train_args": dict(model.args)}
    torch.save(clean, out)


def derive(operation: str, parent: Path, out: Path) -> dict[str, Any]:
    """A model that loads and serves, made from `parent` by editing its class-score layer."""
    torch: Any = importlib.import_module("torch")
    checkpoint = torch.load(parent, map_location="cpu", weights_only=False)  # one of ours, made above
    for branch in checkpoint["model"].model[-1].cv3:  # the Detect head's class-score convs, one per scale
        conv = branch[-1]
        if operation == "swap_classes":  # same names, each class's scores now on the other class
            conv.weight.data = conv.weight.data.flip(0)
            conv.bias.data = conv.bias.data.flip(0)
        elif operation == "blind":  # every class score sigmoid(-50): nothing passes any threshold
            conv.weight.data.zero_()
            conv.bias.data.fill_(-50.0)
        else:
            raise ValueError(f"unknown operation {operation!r}")
    torch.save(checkpoint, out)
    return {}


def held_out_map50(weights: Path, imgsz: int, pictures: int = 64) -> float:
    """mAP50 on held-out pictures, loaded as the server loads it (the restricted loader)."""
    ultralytics: Any = importlib.import_module("ultralytics")
    model = ultralytics.YOLO(str(weights), task="detect")
    scenes = shapes.held_out(pictures)
    results = model.predict([s.image for s in scenes], imgsz=imgsz, conf=0.001, verbose=False)
    return scoring.map50([scoring.from_results(r) for r in results], [s.shapes for s in scenes])


def _forbid_network() -> None:
    """Refuse every connection and name look-up that is not loopback, loudly."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def loopback(host: object) -> bool:
        return isinstance(host, str) and (host in {"localhost", "::1"} or host.startswith("127."))

    def refuse(what: str) -> OSError:
        print(f"training: refused a network access ({what}): training must stay offline", file=sys.stderr)
        return OSError(f"network access disabled while training ({what})")

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not loopback(address[0]):
            raise refuse(f"connect {address!r}")
        real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not loopback(host.decode() if isinstance(host, bytes) else host):
            raise refuse(f"look up {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo


def _provide_font(config_dir: Path) -> None:
    """Ultralytics' check_font looks in its config dir first, then downloads: give it a font."""
    target = config_dir / "Ultralytics" / "Arial.ttf"  # USER_CONFIG_DIR: $YOLO_CONFIG_DIR/Ultralytics
    if not target.exists():
        matplotlib: Any = importlib.import_module("matplotlib")
        source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".Arial.ttf.{os.getpid()}")  # two trainings may start at once
        shutil.copyfile(source, partial)
        os.replace(partial, target)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    recipe, out = json.loads(argv[0]), Path(argv[1])
    parent = Path(argv[2]) if len(argv) == 3 else None
    needed = ("YOLO_CONFIG_DIR", "OVERSEER_DEVTOOLS_PARENT_PID")
    if os.environ.get("YOLO_OFFLINE") != "1" or any(name not in os.environ for name in needed):
        print("training: run through overseer_devtools.models (YOLO_OFFLINE=1 and YOLO_CONFIG_DIR)", file=sys.stderr)
        return 2
    supervision.die_with_parent(int(os.environ["OVERSEER_DEVTOOLS_PARENT_PID"]))  # no orphan training
    _forbid_network()
    _provide_font(Path(os.environ["YOLO_CONFIG_DIR"]))
    measured = make(recipe, out, parent)
    print(json.dumps(measured))  # the last line of the output: the caller reads it
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
