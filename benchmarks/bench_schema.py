"""Schema-core benchmark: the cost of checking a model config, and of `overseer validate` in CI.

    .venv/bin/python benchmarks/bench_schema.py            # print the figures
    .venv/bin/python benchmarks/bench_schema.py --check    # also exit 1 when p99 misses the 1 ms aim

1. validate_model_config for one ModelDeployment against the example object-detector schema
   (what the admission webhook and the serving pod run): median and p99 over 10,000 runs, after a
   warm-up (validators are compiled once per schema and cached).
2. The same plus parsing the ModelDeployment with the API model (the full per-object CLI check).
3. `overseer validate` over 1,000 ModelDeployment manifests (one file each) and their schema, as a
   CI job runs it: wall time of a fresh process, interpreter start-up included.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from overseer.api.errors import parse_manifest
from overseer.api.v1alpha1 import ModelDeployment, ModelSchema
from overseer.schema import validate_model_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO / "examples" / "object-detector.modelschema.yaml"
DEPLOYMENT_FILE = REPO / "examples" / "cat-recognition.modeldeployment.yaml"
AIM_P99_MS = 1.0


def timings(run: Callable[[], Any], runs: int, warmup: int = 200) -> list[float]:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        run()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def bench_cli(manifests: int) -> tuple[float, int]:
    deployment = yaml.safe_load(DEPLOYMENT_FILE.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="overseer-bench-") as folder:
        root = Path(folder)
        (root / "schema.yaml").write_text(SCHEMA_FILE.read_text(encoding="utf-8"), encoding="utf-8")
        for index in range(manifests):
            deployment["metadata"]["name"] = f"cat-{index:04d}"
            deployment["spec"]["model"]["customObjects"]["resize_resolution"] = 224 if index % 2 else 640
            (root / f"deploy-{index:04d}.yaml").write_text(yaml.safe_dump(deployment), encoding="utf-8")
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "overseer.cli", "validate", str(root)], capture_output=True, text=True, check=False
        )
        return time.perf_counter() - start, done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--manifests", type=int, default=1_000)
    parser.add_argument("--check", action="store_true", help=f"exit 1 when p99 >= {AIM_P99_MS} ms")
    args = parser.parse_args(argv)

    schema = ModelSchema.model_validate(yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8")))
    version = schema.spec.latest.model_dump(by_alias=True)
    body = yaml.safe_load(DEPLOYMENT_FILE.read_text(encoding="utf-8"))
    model = body["spec"]["model"]

    def config_only() -> None:
        result = validate_model_config(version, model["labels"], model["metadata"], model["customObjects"])
        assert result.ok

    def whole_object() -> None:
        parsed, errors = parse_manifest(ModelDeployment, body)
        assert parsed is not None and not errors
        config_only()

    print(f"schema-core benchmark (Python {sys.version.split()[0]}, {args.runs} runs each)")
    config = timings(config_only, args.runs)
    print(f"  validate_model_config:          median {statistics.median(config):.3f} ms   p99 {p99(config):.3f} ms")
    full = timings(whole_object, args.runs)
    print(f"  ModelDeployment parse + config: median {statistics.median(full):.3f} ms   p99 {p99(full):.3f} ms")
    wall, code = bench_cli(args.manifests)
    files = args.manifests + 1
    print(f"  overseer validate, {args.manifests} manifests in {files} files: {wall:.2f} s wall (exit {code})")
    verdict = "meets" if p99(config) < AIM_P99_MS else "MISSES"
    print(f"  aim: p99 < {AIM_P99_MS} ms per validation -> {verdict}")
    return 1 if args.check and verdict == "MISSES" else 0


if __name__ == "__main__":
    sys.exit(main())
