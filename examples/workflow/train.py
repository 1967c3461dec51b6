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
to stderr. Exit 0 done, 1 config refused or publishing failed, 2 usage or
schema unreadable.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from overseer.sdk import ModelConfigError, check_model_config, create_model, load_schema
from publish import PublishError, publish

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
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: {error}") from None
    unknown = set(config) - {"train", "labels", "metadata", "custom_objects"}
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)} (train, labels, metadata, custom_objects)")
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
    try:
        config = read_config(args.config)
        schema = load_schema(args.schema, context=args.context)
    except (OSError, ValueError) as error:  # SchemaLoadError is a ValueError: the file or cluster unreadable
        log(f"{error}")
        return 2
    sections = {key: config.get(key) or {} for key in ("labels", "metadata", "custom_objects")}

    # 1. Fail fast: before any GPU hour is spent, and before anything is saved or published.
    try:
        check_model_config(schema, **sections)
    except ModelConfigError as error:
        log(f"{error}")
        log("nothing trained, saved or published")
        return 1
    log(f"config matches {schema.name} version {schema.version} ({args.schema})")

    # 2. Train.
    settings = config.get("train") or {}
    yolo = train(settings.get("architecture", "yolov8n.yaml"), list(settings.get("classes") or ["cat"]))

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
        log(f"saved {stored.tag} but not published; retry with: python publish.py {weights} {uri}")
        return 1
    log(f"{uri}: {outcome}")

    from overseer.deployment_new.saved_model import sha256_file

    lines = f"MODEL_TAG={stored.tag}\nMODEL_URI={uri}\nMODEL_DIGEST={sha256_file(weights)}\n"
    if args.output:
        args.output.write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
