"""Workflow benchmark: what `overseer deployment new` and `--schemas-from-cluster` cost a CI job.

    .venv/bin/python benchmarks/bench_workflow.py

1. `deployment new --weights` in-process (schema file read, manifest built and checked, printed):
   median over 30 runs; and `--update` of a three-document GitOps file (ruamel.yaml round trip of
   the deployment's document, line splice, read-back check), with the ratio of the two.
2. `--update` of a ModelDeployment whose customObjects hold a list of 1,000 and of 5,000 items:
   the time grows linearly with the document (the line alignment never runs difflib's quadratic
   search on a long middle), shown as the ratio per item.
3. The import cost `--schemas-from-cluster` adds to a CLI run (the Kubernetes client, imported only
   then) next to the CLI's own import: fresh interpreters, median of 5.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from overseer.cli import main
from overseer.deployment_new import update

REPO = Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO / "examples" / "object-detector.modelschema.yaml"
DEPLOYMENT_FILE = REPO / "examples" / "cat-recognition.modeldeployment.yaml"
VALUES = ("--label", "owner=vision-team", "--label", "stage=production", "--metadata", "f1=0.9",
          "--custom-object", "conf=0.3")  # fmt: skip


def median_ms(run: Callable[[], object], runs: int) -> float:
    run()  # warm-up: validators compiled, modules imported
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def quiet(args: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(args)
    assert code == 0, (code, args)


def bench_commands(root: Path) -> tuple[float, float]:
    weights = root / "model.pt"
    weights.write_bytes(b"\0" * 6_500_000)  # the size of a yolov8n checkpoint
    new = ["deployment", "new", "cat-recognition", "--schema", f"{SCHEMA_FILE}#2", "--uri", "file:///m/model.pt",
           "--weights", str(weights), "--model-name", "cat_recognition", "--model-version", "20240110",
           *VALUES]  # fmt: skip
    gitops = root / "cat.yaml"
    other = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ml-serving}  # kept\n"
    original = f"{other}---\n{DEPLOYMENT_FILE.read_text()}---\n{other}"

    def bump() -> None:
        gitops.write_text(original)
        quiet([*new, "--update", str(gitops)])

    return median_ms(lambda: quiet(new), 30), median_ms(bump, 30)


def bench_long_list(items: int) -> float:
    lines = "".join("      - 1\n" for _ in range(items))
    text = (
        "apiVersion: overseer.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: x}\nspec:\n"
        f"  schemaRef: {{name: s, version: 1}}\n  model:\n    name: a\n    customObjects:\n      big:\n{lines}"
    )
    model = {"name": "b", "customObjects": {"big": [*[1] * items, 2]}}
    start = time.perf_counter()
    update.update_text(text, "bench.yaml", update.Target("x"), model, {"name": "s", "version": 1})
    return (time.perf_counter() - start) * 1000


def import_ms(statement: str) -> float:
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main_bench() -> None:
    with tempfile.TemporaryDirectory(prefix="overseer-bench-") as folder:
        new_ms, update_ms = bench_commands(Path(folder))
    print(f"deployment new --weights (6.5 MB weights): median {new_ms:.1f} ms")
    print(f"deployment new --update (3-document file):  median {update_ms:.1f} ms ({update_ms / new_ms:.1f}x new)")
    small, large = bench_long_list(1_000), bench_long_list(5_000)
    print(
        f"--update, list of 1,000 / 5,000 items: {small:.0f} / {large:.0f} ms "
        f"({small / 1_000:.2f} / {large / 5_000:.2f} ms per item: linear)"
    )
    cli = import_ms("import overseer.cli")
    cluster = import_ms("import overseer.cli, kubernetes.client")
    print(
        f"fresh interpreter importing overseer.cli: {cli:.0f} ms; with the Kubernetes client "
        f"(--schemas-from-cluster): {cluster:.0f} ms (+{cluster - cli:.0f} ms, {cluster / cli:.2f}x)"
    )


if __name__ == "__main__":
    main_bench()
