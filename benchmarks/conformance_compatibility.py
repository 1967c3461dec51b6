"""Agreement of check_compatibility with a peer's published compatibility cases: Confluent Schema
Registry's JSON Schema diff examples (263 pairs of an original and an updated schema, each marked
compatible or not under BACKWARD).

    .venv/bin/python benchmarks/conformance_compatibility.py PATH [-v]

PATH is a checkout of github.com/confluentinc/schema-registry (or its
json-schema-provider/src/test/resources folder). A measurement, not a test: the cases are not
vendored; without a path the script says so and exits 0.

Each case's schema becomes the `customObjects` section as {"type": "object", "properties":
{"value": CASE}, "required": ["value"]} (a section must describe an object; a case need not), in
the case file's dialect (draft-07 for the files without a year, 2020-12 for the others), with CASE
given `$id: urn:overseer:case` so that its own `#...` references still mean its own root. A case
agrees when check_compatibility(original, update, "BACKWARD") finds no breaking change exactly when
Confluent says the update is compatible. Disagreements are printed with `-v`, with the changes
found; docs/schema.md lists them with the reason for each.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from overseer.schema import check_compatibility

CASE_ID = "urn:overseer:case"
FILES = {
    "diff-schema-examples.json": "http://json-schema.org/draft-07/schema#",
    "diff-combined-schema-examples.json": "http://json-schema.org/draft-07/schema#",
    "diff-schema-examples-2020-12.json": "https://json-schema.org/draft/2020-12/schema",
    "diff-combined-schema-examples-2020-12.json": "https://json-schema.org/draft/2020-12/schema",
}
RESOURCES = Path("json-schema-provider/src/test/resources")


def lenient_json(text: str) -> Any:
    """The files are read by Jackson, which takes trailing commas; json does not."""
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", text))


def section_for(schema: Any, dialect: str) -> dict[str, Any]:
    case = schema
    if isinstance(schema, dict):
        case = {k: v for k, v in schema.items() if k != "$schema"}  # the section declares the dialect
        if dialect.startswith("http://json-schema.org/draft-07") and "$ref" in case:
            # draft-07 ignores every sibling of $ref, the $id added below too: the reference moves
            # into an allOf (the same meaning), so that its `#/definitions/...` stays the case's own.
            case = {**{k: v for k, v in case.items() if k != "$ref"}, "allOf": [{"$ref": case["$ref"]}]}
        if "$id" not in case:
            case = {"$id": CASE_ID, **case}
    return {"$schema": dialect, "type": "object", "properties": {"value": case}, "required": ["value"]}


def run(folder: Path, verbose: bool) -> int:
    totals: Counter[str] = Counter()
    started = time.perf_counter()
    slowest: tuple[float, str] = (0.0, "")
    for name, dialect in FILES.items():
        path = folder / name
        if not path.is_file():
            print(f"{name}: not found, skipped")
            continue
        counts: Counter[str] = Counter()
        for case in lenient_json(path.read_text(encoding="utf-8")):
            old = {"customObjects": section_for(case["original_schema"], dialect)}
            new = {"customObjects": section_for(case["update_schema"], dialect)}
            began = time.perf_counter()
            try:
                report = check_compatibility(old, new, "BACKWARD")
            except Exception as error:  # a crash is exactly what this measures
                counts["exception"] += 1
                print(f"EXCEPTION {name}: {case['description']}: {error!r}")
                continue
            took = time.perf_counter() - began
            slowest = max(slowest, (took, f"{name}: {case['description']}"))
            invalid = [c for c in report.changes if c.code == "SCHEMA_INVALID"]
            if invalid:
                counts["refused"] += 1
                outcome = "refused"
            elif report.compatible == case["compatible"]:
                counts["agree"] += 1
                continue
            else:
                counts["false alarm" if case["compatible"] else "missed"] += 1
                outcome = "false alarm" if case["compatible"] else "missed break"
            if verbose:
                found = "; ".join(f"{c.code} {c.path}" for c in report.changes) or "no change"
                print(f"{outcome.upper()} {name}: {case['description']}")
                print(f"    Confluent: {'compatible' if case['compatible'] else 'breaks'} {case['changes']}")
                print(f"    here: {found}")
        totals.update(counts)
        print(f"{name:44} {sum(counts.values()):4} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    cases = sum(totals.values())
    elapsed = time.perf_counter() - started
    print(
        f"Confluent JSON Schema compatibility cases (BACKWARD): {cases} cases, {totals['agree']} agree, "
        f"{totals['missed']} missed breaks, {totals['false alarm']} false alarms, {totals['refused']} refused, "
        f"{totals['exception']} exceptions ({elapsed:.2f} s; slowest {slowest[0] * 1e3:.1f} ms: {slowest[1]})"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="a confluentinc/schema-registry checkout, or its test resources")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case that does not agree")
    args = parser.parse_args(argv)
    if not args.path:
        print("skipped: pass the path of a confluentinc/schema-registry checkout")
        return 0
    folder = Path(args.path)
    if (folder / RESOURCES).is_dir():
        folder = folder / RESOURCES
    return run(folder, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
