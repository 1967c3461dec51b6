"""docs/schema.md matches the product: every compatibility code, the printer columns."""

from __future__ import annotations

import re

import yaml
from overseer.schema.codes import CODES
from schema_testing import REPO


def test_every_code_is_in_the_rules_table() -> None:
    text = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([A-Z][A-Z_]+)`", text))
    assert sorted(set(CODES) - documented) == []


def test_documented_printer_columns_match_the_crds() -> None:
    """`kubectl get` shows the priority-0 columns; the rest only with -o wide."""
    text = " ".join((REPO / "docs" / "schema.md").read_text(encoding="utf-8").split())
    for short, kind in (("msch", "modelschemas"), ("mdep", "modeldeployments")):
        match = re.search(rf"`kubectl get {short}`: ([\w, ]+), plus ([\w, ]+) with `-o wide`", text)
        assert match, f"docs/schema.md does not list the columns of kubectl get {short}"
        crd = yaml.safe_load((REPO / "crds" / f"overseer.dev_{kind}.yaml").read_text(encoding="utf-8"))
        columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        shown = [c["name"] for c in columns if not c.get("priority")]
        wide = [c["name"] for c in columns if c.get("priority")]
        assert (match[1].split(", "), match[2].split(", ")) == (shown, wide)
