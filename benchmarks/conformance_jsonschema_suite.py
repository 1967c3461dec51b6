"""Conformance of validate_model_config with the official JSON Schema Test Suite (draft 2020-12, or
draft-07 with --draft 7).

    .venv/bin/python benchmarks/conformance_jsonschema_suite.py PATH/TO/JSON-Schema-Test-Suite \\
        [--optional] [--draft 7] [-v]

A measurement, not a test: the suite is not vendored (get it from github.com/json-schema-org/
JSON-Schema-Test-Suite); without a path the script says so and exits 0.

Each case's schema becomes the `customObjects` section as {"type": "object", "properties":
{"value": CASE}, "required": ["value"]} (with the draft-07 `$schema` under --draft 7), with CASE given
`$id: urn:overseer:case` so that its own `#...` references still mean its own root, and the case's
data becomes {"value": DATA}. A case agrees
when validate_model_config finds no problem exactly when the suite says the data is valid. Refusals
(the schema itself is reported as unusable: remote references, patterns RE2 cannot run, a default
that violates its schema) are counted apart, since refusing is this product's documented choice.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from overseer.schema import validate_model_config

CASE_ID = "urn:overseer:case"
DRAFTS = {"2020-12": ("draft2020-12", None), "7": ("draft7", "http://json-schema.org/draft-07/schema#")}


def section_for(schema: Any, dialect: str | None = None) -> dict[str, Any]:
    case = schema
    if isinstance(schema, dict) and "$id" not in schema:
        case = {"$id": CASE_ID, **schema}
    if dialect is not None and isinstance(case, dict):
        case = {k: v for k, v in case.items() if k != "$schema"}  # the section declares the dialect
    section = {"type": "object", "properties": {"value": case}, "required": ["value"]}
    return {"$schema": dialect, **section} if dialect is not None else section


def run(suite: Path, optional: bool, verbose: bool, draft: str = "2020-12") -> int:
    folder, dialect = DRAFTS[draft]
    root = suite / "tests" / folder
    files = sorted(root.glob("*.json"))
    if optional:
        files += sorted((root / "optional").rglob("*.json"))
    totals: Counter[str] = Counter()
    by_file: dict[str, Counter[str]] = {}
    started = time.perf_counter()
    for path in files:
        counts: Counter[str] = Counter()
        for group in json.loads(path.read_text(encoding="utf-8")):
            section = section_for(group["schema"], dialect)
            for test in group["tests"]:
                try:
                    result = validate_model_config({"customObjects": section}, {}, {}, {"value": test["data"]})
                except Exception as error:  # a crash is exactly what this measures
                    counts["exception"] += 1
                    if verbose:
                        print(f"EXCEPTION {path.name}: {group['description']} / {test['description']}: {error!r}")
                    continue
                refused = any(p.path.startswith("schema.") for p in result.problems)
                if refused:
                    counts["refused"] += 1
                    outcome = "refused"
                elif result.ok == test["valid"]:
                    counts["agree"] += 1
                    continue
                else:
                    counts["disagree"] += 1
                    outcome = "disagree"
                if verbose:
                    detail = "; ".join(str(p) for p in result.problems)[:200]
                    print(f"{outcome.upper()} {path.relative_to(root)}: {group['description']} / {test['description']}")
                    print(f"    expected valid={test['valid']}: {detail}")
        by_file[str(path.relative_to(root))] = counts
        totals.update(counts)
    elapsed = time.perf_counter() - started
    for name, counts in by_file.items():
        if set(counts) - {"agree"}:
            print(f"{name:48} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    cases = sum(totals.values())
    print(
        f"JSON Schema Test Suite {folder}{' with optional' if optional else ''}: {cases} cases, "
        f"{totals['agree']} agree, {totals['disagree']} disagree, {totals['refused']} refused, "
        f"{totals['exception']} exceptions ({elapsed:.1f} s)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", nargs="?", help="path of a JSON-Schema-Test-Suite checkout")
    parser.add_argument("--optional", action="store_true", help="also the optional tests (formats, regex dialect)")
    parser.add_argument("--draft", choices=sorted(DRAFTS), default="2020-12", help="the suite's dialect")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case that does not agree")
    args = parser.parse_args(argv)
    if not args.suite or not (Path(args.suite) / "tests" / DRAFTS[args.draft][0]).is_dir():
        print(f"skipped: pass the path of a JSON-Schema-Test-Suite checkout (it holds tests/{DRAFTS[args.draft][0]})")
        return 0
    return run(Path(args.suite), args.optional, args.verbose, args.draft)


if __name__ == "__main__":
    sys.exit(main())
