"""`python -m overseer.operator.chartgen [--out FILE] [--check]`: write the Helm chart's webhook
configuration template from overseer.operator.webhooks (one source with local mode), or fail
when the committed file drifts (`make crds-check` runs it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from overseer.operator.webhooks import CHART_TEMPLATE, chart_template


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m overseer.operator.chartgen", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CHART_TEMPLATE, help=f"file to write (default: {CHART_TEMPLATE})")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 when the file differs")
    args = parser.parse_args(argv)
    text = chart_template()
    current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
    if current == text:
        return 0
    if args.check:
        print(
            f"chartgen: out of date: {args.out}; run `python -m overseer.operator.chartgen --out {args.out}`",
            file=sys.stderr,
        )
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"chartgen: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
