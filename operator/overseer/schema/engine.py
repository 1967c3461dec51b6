"""The validator of the schema core: checks a value against a section resolved once
(overseer.schema.resolved), keyword by keyword as JSON Schema 2020-12 (or draft-07) says; the
keywords themselves are in overseer.schema.keywords.

It replaces python-jsonschema's validator classes for three reasons, each measured
(benchmarks/bench_schema_worst.py, docs/schema.md):

- Speed. jsonschema builds a validator object per subschema entered, looks every `$ref` up again
  in a registry, and builds an error (with its context) for every failed branch of an `anyOf`; here
  the references are already nodes, alternatives are tried with a first-failure check, and the
  answer for a (subschema, value) pair is memoised for the rest of the check, so nested alternatives
  cost in proportion to the schema's size, not to its paths.
- Bounded work. Every step is counted against a budget (limits.MAX_VALIDATION_STEPS): a subschema
  applied to a value, a regular-expression search, or a few values scanned by `enum`, `const`,
  `uniqueItems`, `required` or a property loop. Past the budget the check stops with
  WorkLimitExceeded instead of running for seconds.
- Bounded depth. One nested subschema is two Python frames here (the walk and the keyword), and a
  chain of more than limits.MAX_EVALUATION_DEPTH of them stops with EvaluationTooDeep, so a check
  needs no more than Python's default recursion limit, in any thread (jsonschema nests generators,
  which also use the C stack).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from overseer.schema import regex
from overseer.schema.formats import format_checker
from overseer.schema.keywords import Failure, Path, key_of, plan_of
from overseer.schema.limits import MAX_EVALUATION_DEPTH, count_values
from overseer.schema.resolved import Node, ResolvedSection


class WorkLimitExceeded(Exception):
    """A check ran out of its step budget."""


class EvaluationTooDeep(WorkLimitExceeded):
    """A check nested more subschemas than limits.MAX_EVALUATION_DEPTH."""


# --- one check ----------------------------------------------------------------------------------------


class Evaluation:
    """One check of values against one resolved section, with its budget, depth and memo."""

    def __init__(self, section: ResolvedSection, steps: int) -> None:
        self.section = section
        self.steps = steps
        self.formats = format_checker(section.dialect)
        self.depth = 0
        # (node, value) -> valid? Sound because a value's validity depends on nothing else, unless a
        # $dynamicRef resolves through the dynamic scope (then the path that got here matters).
        self._valid: dict[tuple[int, int], bool] | None = None if section.dynamic else {}
        # (node, path, value) already reported: an allOf of the same reference twice reports once.
        self._reported: dict[tuple[int, Path, int], bool] | None = None if section.dynamic else {}
        self._trials: dict[tuple[int, Path, int], bool] = {}
        self._keys: dict[int, tuple[Any, int]] = {}
        self.scope: list[str] = []
        """The schema resources entered, outermost first (for $dynamicRef)."""
        self._dynamic = section.dynamic

    # Entry points ---------------------------------------------------------------------------------

    def failures(self, node: Node, instance: Any, path: Path = ()) -> list[Failure]:
        """Every failure of `instance` against `node` (at most a few per keyword)."""
        out: list[Failure] = []
        self.check(node, instance, path, out)
        return out

    def trial_failures(self, node: Node, instance: Any, path: Path) -> list[Failure]:
        """The failures of `instance` against `node`, for a message that may not use them: they do
        not count as reported (the walk may still report the same subschema elsewhere). Trials
        share a memo of their own, so nested alternatives stay linear here too."""
        saved = self._reported
        if saved is not None:
            self._reported = self._trials
        try:
            return self.failures(node, instance, path)
        finally:
            self._reported = saved

    def valid(self, node: Node, instance: Any) -> bool:
        return self.check(node, instance, (), None)

    # The walk -------------------------------------------------------------------------------------

    def spend(self, steps: int) -> None:
        self.steps -= steps
        if self.steps < 0:
            raise WorkLimitExceeded

    def check(self, node: Node, instance: Any, path: Path, out: list[Failure] | None) -> bool:
        """Does `instance` satisfy `node`? With `out`, collect every failure; without, stop at the first."""
        schema = node.schema
        if schema is True:
            return True
        if schema is False:
            if out is not None:
                out.append(Failure("false", False, instance, path, node))
            return False
        if out is None:
            memo = self._valid
            key: Any = (id(node), id(instance))
        else:
            memo = self._reported  # type: ignore[assignment]
            key = (id(node), path, id(instance))
        if memo is not None:
            known = memo.get(key)
            if known is not None:
                return known
        self.steps -= 1
        if self.steps < 0:
            raise WorkLimitExceeded
        self.depth += 1
        if self.depth > MAX_EVALUATION_DEPTH:
            raise EvaluationTooDeep
        entered = self._dynamic and self._enter(node)
        plan = node.plan
        if plan is None:
            plan = node.plan = plan_of(node)
        ok = True
        for handler, value in plan:
            if not handler(self, node, value, instance, path, out):
                ok = False
                if out is None:
                    break
        if entered:
            self.scope.pop()
        self.depth -= 1
        if memo is not None:
            memo[key] = ok
        return ok

    def _enter(self, node: Node) -> bool:
        if node.base and (not self.scope or self.scope[-1] != node.base):
            self.scope.append(node.base)
            return True
        return False

    def key(self, value: Any) -> Any:
        """keywords.key_of, memoised per container; every use is paid for by the container's size (hashing or
        comparing the key walks it again)."""
        if not isinstance(value, dict | list | tuple):
            return ("b", value) if isinstance(value, bool) else value
        known = self._keys.get(id(value))
        if known is None:
            known = self._keys[id(value)] = (key_of(value), count_values(value))
        self.spend(known[1] >> 3)
        return known[0]

    def dynamic_target(self, node: Node) -> Node:
        """Where a `$dynamicRef` leads from here: the outermost resource in the dynamic scope that
        declares the anchor, when the statically resolved target declares it as dynamic."""
        target = node.dynamic_refs[0]
        name = node.schema["$dynamicRef"].rpartition("#")[2]
        if not (isinstance(target.schema, Mapping) and target.schema.get("$dynamicAnchor") == name):
            return target
        for base in self.scope:
            found = self.section.dynamic_anchors.get((base, name))
            if found is not None:
                return found
        return target

    # Annotations for unevaluatedProperties / unevaluatedItems -----------------------------------

    def evaluated_keys(self, node: Node, instance: dict[str, Any]) -> set[str]:
        """Properties of `instance` some keyword of `node` (or of a subschema applied in place that
        succeeded) evaluated; python-jsonschema's reading of the annotation rules."""
        raw = node.schema
        if not isinstance(raw, Mapping):
            return set()
        self.spend(1)
        self.depth += 1
        if self.depth > MAX_EVALUATION_DEPTH:
            raise EvaluationTooDeep
        keys: set[str] = set()
        children = node.children
        if node.ref is not None:
            keys |= self.evaluated_keys(node.ref, instance)
        if node.dynamic_refs:
            keys |= self.evaluated_keys(self.dynamic_target(node), instance)
        declared = raw.get("properties")
        if isinstance(declared, Mapping):
            self.spend(len(instance) >> 3)
            keys |= declared.keys() & instance.keys()
        for keyword in ("additionalProperties", "unevaluatedProperties"):
            child = children.get(keyword)
            if isinstance(child, Node):
                self.spend(len(instance) >> 3)
                keys |= {k for k, v in instance.items() if self.valid(child, v)}
        patterns = raw.get("patternProperties")
        if isinstance(patterns, Mapping):
            self.spend(len(instance) * len(patterns))  # a search per name and pattern
            keys |= {k for k in instance if any(regex.search(p, k) for p in patterns)}
        for name, child in children.get("dependentSchemas", {}).items():
            if name in instance:
                keys |= self.evaluated_keys(child, instance)
        for keyword in ("allOf", "oneOf", "anyOf"):
            for child in _listed(children.get(keyword)):
                if self.valid(child, instance):
                    keys |= self.evaluated_keys(child, instance)
        keys |= self._conditional(node, instance, self.evaluated_keys)
        self.depth -= 1
        return keys

    def evaluated_items(self, node: Node, instance: list[Any] | tuple[Any, ...]) -> set[int]:
        raw = node.schema
        if not isinstance(raw, Mapping):
            return set()
        if "items" in raw:
            return set(range(len(instance)))
        self.spend(1)
        self.depth += 1
        if self.depth > MAX_EVALUATION_DEPTH:
            raise EvaluationTooDeep
        indexes: set[int] = set()
        children = node.children
        if node.ref is not None:
            indexes |= self.evaluated_items(node.ref, instance)
        if node.dynamic_refs:
            indexes |= self.evaluated_items(self.dynamic_target(node), instance)
        if isinstance(raw.get("prefixItems"), list):
            indexes |= set(range(len(raw["prefixItems"])))
        indexes |= self._conditional(node, instance, self.evaluated_items)
        for keyword in ("contains", "unevaluatedItems"):
            child = children.get(keyword)
            if isinstance(child, Node):
                self.spend(len(instance) >> 3)
                indexes |= {i for i, item in enumerate(instance) if self.valid(child, item)}
        for keyword in ("allOf", "oneOf", "anyOf"):
            for child in _listed(children.get(keyword)):
                if self.valid(child, instance):
                    indexes |= self.evaluated_items(child, instance)
        self.depth -= 1
        return indexes

    def _conditional(self, node: Node, instance: Any, collect: Callable[[Node, Any], set[Any]]) -> set[Any]:
        found: set[Any] = set()
        children = node.children
        condition = children.get("if")
        if not isinstance(condition, Node):
            return found
        if self.valid(condition, instance):
            found |= collect(condition, instance)
            if isinstance(children.get("then"), Node):
                found |= collect(children["then"], instance)
        elif isinstance(children.get("else"), Node):
            found |= collect(children["else"], instance)
        return found


def _listed(value: Any) -> list[Node]:
    return [value[i] for i in sorted(value)] if isinstance(value, dict) else []


__all__ = ["Evaluation", "EvaluationTooDeep", "Failure", "WorkLimitExceeded"]
