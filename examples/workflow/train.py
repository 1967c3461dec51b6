"""The ML development team's training job: check the config against the cluster's ModelSchema, train,
save the model with BentoML, publish its weights to the object store.

    python examples/workflow/train.py --config examples/workflow/configs/v1.toml --output "$WORK/model.env"

1. The config (labels, metadata, custom_objects) is checked against the ModelSchema first, with the
   SDK: a config production would refuse (a required parameter missing, `conf` renamed
   `confidence`) fails here, with every problem listed, before anything is trained, saved or
   published (exit 1).
2. Training: a YOLOv8n network from Ultralytics' bundled config, randomly initialised (a real job
   trains it on its dataset here; the example stays offline and takes a second).
3. `overseer.sdk.create_model` saves it to the BentoML store with the checked config (the schema's
   defaults filled in).
4. The weights file is published to `--publish-to`/VERSION/model.pt in the object store (credentials
   and endpoint the standard AWS way, from the environment).

For the next step, --output FILE (or stdout) gets shell lines: MODEL_TAG=name:version,
MODEL_URI=s3://..., MODEL_DIGEST=sha256:... (like a CI job's output file). Progress and errors go
to stderr. Exit 0 done; 1 the config refused by the schema, or publishing failed; 2 usage, the
config file or the schema unreadable.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tomllib
from pathlib import Path
from typing import Any

from overseer.sdk import ModelConfigError, check_model_config, create_model, load_schema
from publish import PublishError, publish, sha256_of

DEFAULT_SCHEMA = "cluster:ml-serving/object-detector#2"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Check, train, save and publish a YOLO detector.")
    parser.add_argument(
        "--config", required=True, type=Path, help="TOML: [train], [labels], [metadata], [custom_objects]"
    )
    parser.add_argument(
        "--schema",
        default=DEFAULT_SCHEMA,
        help=f"ModelSchema reference, FILE[#N] or cluster:NS/NAME[#N] ({DEFAULT_SCHEMA})",
    )
    parser.add_argument("--context", help="kubeconfig context for a cluster: reference (default: the current one)")
    parser.add_argument("--name", default="cat_detector", help="BentoML model name")
    parser.add_argument(
        "--publish-to",
        default="s3://models/cat_detector",
        metavar="s3://BUCKET/PREFIX",
        help="where the weights go: PREFIX/VERSION/model.pt",
    )
    parser.add_argument("--output", type=Path, help="write MODEL_TAG, MODEL_URI, MODEL_DIGEST here (default: stdout)")
    return parser.parse_args(argv)


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"--config {path}: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"--config {path}: {error}") from None
    unknown = set(config) - {"train", "labels", "metadata", "custom_objects"}
    if unknown:
        raise ValueError(
            f"--config {path}: unknown sections {sorted(unknown)} (train, labels, metadata, custom_objects)"
        )
    training = config.setdefault("train", {})
    architecture = training.setdefault("architecture", "yolov8n.yaml")
    classes = training.setdefault("classes", ["cat"])
    if not isinstance(architecture, str) or not architecture.endswith((".yaml", ".yml")):
        raise ValueError(f"--config {path}: train.architecture must name a network config such as yolov8n.yaml")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise ValueError(f"--config {path}: train.classes must be a list of class names")
    return config


def train(architecture: str, classes: list[str]) -> Any:
    """Stands in for `YOLO(architecture).train(data=..., epochs=...)`: the same network, untrained."""
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    yolo = YOLO(architecture)  # a bundled config name resolves locally: no download
    network = yaml_model_load(architecture)
    network["nc"] = len(classes)  # one output per class of the dataset, as training on it would set
    yolo.model = DetectionModel(network, verbose=False)
    yolo.model.names = dict(enumerate(classes))
    return yolo


def log(message: str) -> None:
    print(f"train.py: {message}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # stdout is for the result: what the libraries print (Ultralytics, BentoML) goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        code, result = run(args)
    if result is not None:
        if args.output:
            args.output.write_text(result, encoding="utf-8")
        else:
            sys.stdout.write(result)
    return code


def run(args: argparse.Namespace) -> tuple[int, str | None]:
    """The job; returns the exit code and, when published, the MODEL_* lines."""
    try:
        config = read_config(args.config)
        schema = load_schema(args.schema, context=args.context)
    except ValueError as error:  # the config; or SchemaLoadError: the schema file or the cluster unreadable
        log(f"{error}")
        return 2, None
    sections = {key: config.get(key) or {} for key in ("labels", "metadata", "custom_objects")}

    # 1. Fail fast: before any GPU hour is spent, and before anything is saved or published.
    try:
        check_model_config(schema, **sections)
    except ModelConfigError as error:
        log(f"{error}")
        log("nothing trained, saved or published")
        return 1, None
    log(f"config matches {schema.name} version {schema.version} ({args.schema})")

    # 2. Train.
    yolo = train(config["train"]["architecture"], config["train"]["classes"])

    # 3. Save with the checked config (create_model checks again, against the same schema version).
    with create_model(args.name, schema=schema, **sections) as model:
        yolo.save(model.path_of("model.pt"))
    import bentoml

    stored = bentoml.models.get(model.tag)  # the folder inside `with` was a temporary one
    weights = Path(stored.path) / "model.pt"
    log(f"saved {stored.tag}")

    # 4. Publish under the model's version: a published key is never overwritten.
    uri = f"{args.publish_to.rstrip('/')}/{stored.tag.version}/model.pt"
    try:
        outcome = publish(weights, uri)
    except PublishError as error:
        log(f"{error}")
        retry = f"python {Path(__file__).with_name('publish.py')} {weights} {uri}"
        log(f"saved {stored.tag} but not published; retry with: {retry}")
        return 1, None
    log(f"{uri}: {outcome}")
    digest = "sha256:" + sha256_of(weights).hex()
    return 0, f"MODEL_TAG={stored.tag}\nMODEL_URI={uri}\nMODEL_DIGEST={digest}\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
