"""What `overseer validate` checks, as pure functions over parsed manifests.

ModelSchema: a well-formed object, every section a usable JSON Schema, versions unique and
increasing, each version compatible with the earlier ones per spec.compatibility.
ModelDeployment: a well-formed object, schemaRef resolving among the given ModelSchemas, the
model's config valid against that version, the promotion gate satisfiable.
Problems carry the object identity and a field path; nothing here prints or reads files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from overseer import text as hints
from overseer.api.errors import parse_manifest
from overseer.api.v1alpha1 import API_VERSION, GROUP, KINDS, ModelDeployment, ModelSchema, SchemaVersion
from overseer.manifests import Document
from overseer.schema.compatibility import check_history
from overseer.schema.validation import SECTIONS, compile_section, validate_model_config

Severity = Literal["error", "warning"]
NO_NAMESPACE = "-"


@dataclass(frozen=True)
class Problem:
    source: str
    index: int
    line: int
    kind: str | None
    namespace: str | None
    name: str | None
    path: str
    message: str
    severity: Severity = "error"

    @property
    def subject(self) -> str:
        """`ModelSchema/ml-serving/object-detector`, or `document 2 (line 14)` for unidentified ones.

        The namespace is what the manifest says; `-` when it says none (the object lands wherever
        `kubectl -n` puts it, and it may have matched a schema of any namespace). `-` is never a
        namespace name, so the three segments stay parseable.
        """
        if self.kind and self.name:
            return f"{self.kind}/{self.namespace or NO_NAMESPACE}/{self.name}"
        return f"document {self.index} (line {self.line})"

    def __str__(self) -> str:
        text = f"warning: {self.message}" if self.severity == "warning" else self.message
        where = f"{self.path}: " if self.path else ""
        # One line per problem, whatever the file name, object name or message holds.
        return hints.one_line(f"{self.source}: {self.subject}: {where}{text}")

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "document": self.index,
            "line": self.line,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "path": self.path,
            "message": self.message,
            "severity": self.severity,
        }


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    schemas: int = 0
    deployments: int = 0
    skipped: int = 0
    """Documents of other kinds (a Deployment from `helm template`): not ours to judge."""

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for p in self.problems if p.severity == "warning")


@dataclass(frozen=True)
class _Object:
    document: Document
    kind: str
    namespace: str | None
    name: str

    def problem(self, path: str, message: str, severity: Severity = "error") -> Problem:
        doc = self.document
        return Problem(doc.source, doc.index, doc.line, self.kind, self.namespace, self.name, path, message, severity)


@dataclass
class _SchemaEntry:
    obj: _Object
    parsed: ModelSchema | None
    usable: dict[int, SchemaVersion]
    """Versions whose three sections are valid JSON Schemas, by number."""


def check_documents(documents: Iterable[Document], extra_schemas: Iterable[Document] = ()) -> Report:
    """Check every ModelSchema and ModelDeployment in `documents`.

    `extra_schemas` (from --schemas) only provide ModelSchemas for schemaRef resolution; they are
    checked too, since a deployment cannot be judged against a broken schema.
    """
    report = Report()
    schemas: list[_SchemaEntry] = []
    deployments: list[_Object] = []
    seen: dict[tuple[str, str | None, str], Document] = {}
    for document, only_schemas in [(d, False) for d in documents] + [(d, True) for d in extra_schemas]:
        obj = _identify(document, report)
        if obj is None:
            continue
        if only_schemas and obj.kind != "ModelSchema":
            continue
        key = (obj.kind, obj.namespace, obj.name)
        if key in seen:
            first = seen[key]
            if (first.source, first.index) == (document.source, document.index):
                continue  # the same file given twice (a path and --schemas)
            report.problems.append(
                obj.problem("metadata.name", f"duplicate {obj.kind} (first defined in {first.source}:{first.line})")
            )
            continue
        seen[key] = document
        if obj.kind == "ModelSchema":
            report.schemas += 1
            entry, problems = _check_schema(obj)
            schemas.append(entry)
            report.problems.extend(problems)
        else:
            deployments.append(obj)
    for obj in deployments:
        report.deployments += 1
        report.problems.extend(_check_deployment(obj, schemas))
    return report


def check_object(body: Mapping[str, Any], known_schemas: Iterable[Mapping[str, Any]] = ()) -> list[Problem]:
    """Admission-style check of one ModelSchema or ModelDeployment, the way `overseer validate` does.

    `known_schemas` are ModelSchema bodies a deployment may reference (for a webhook: the ones in
    the object's namespace). Only the problems of `body` itself are returned.
    """
    subject = Document("<object>", 1, 1, body)
    context = [Document("<known>", index + 1, 1, schema) for index, schema in enumerate(known_schemas)]
    report = check_documents([subject], context)
    return [p for p in report.problems if p.source == subject.source]


# --- identification --------------------------------------------------------------------------------


def _identify(document: Document, report: Report) -> _Object | None:
    """The object's kind and name when it is one of ours; problems for what looks broken."""
    body = document.body
    if body is None:
        return None  # an empty document between `---` separators

    def problem(path: str, message: str, kind: str | None = None, name: str | None = None) -> None:
        ns = _namespace(body)
        report.problems.append(Problem(document.source, document.index, document.line, kind, ns, name, path, message))

    if not isinstance(body, Mapping):
        problem("", f"expected a Kubernetes object (a mapping), found {hints.found(body)}")
        return None
    api_version, kind = body.get("apiVersion"), body.get("kind")
    name = _name(body)
    if api_version is None and kind is None:
        problem("", "not a Kubernetes object: apiVersion and kind are missing")
        return None
    if not isinstance(kind, str) or not kind:
        problem("kind", f"expected a kind, found {hints.found(kind) if kind is not None else 'nothing'}")
        return None
    if not isinstance(api_version, str) or not api_version:
        missing = "missing" if api_version is None else f"expected a string, found {hints.found(api_version)}"
        expected = f" (expected {API_VERSION})" if kind in KINDS else ""
        problem("apiVersion", missing + expected, kind, name)
        return None
    group, _, version = api_version.rpartition("/")
    if group != GROUP:
        if kind in KINDS:
            problem("apiVersion", f"{api_version!r} does not serve {kind}; expected {API_VERSION}", kind, name)
        else:
            report.skipped += 1
        return None
    if kind not in KINDS:
        hint = hints.most_similar(kind, KINDS)
        suffix = f"; did you mean {hint!r}?" if hint else f" (expected one of {', '.join(KINDS)})"
        problem("kind", f"unknown kind {kind!r} in {GROUP}{suffix}", kind, name)
        return None
    if api_version != API_VERSION:
        problem("apiVersion", f"unsupported version {version!r}; expected {API_VERSION}", kind, name)
        return None
    if name is None:
        problem("metadata.name", "required field missing", kind)
        return None
    return _Object(document, kind, _namespace(body), name)


def _name(body: Mapping[str, Any]) -> str | None:
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) and name else None


def _namespace(body: Any) -> str | None:
    metadata = body.get("metadata") if isinstance(body, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return namespace if isinstance(namespace, str) and namespace else None


# --- ModelSchema -------------------------------------------------------------------------------------


def _check_schema(obj: _Object) -> tuple[_SchemaEntry, list[Problem]]:
    parsed, errors = parse_manifest(ModelSchema, obj.document.body)
    problems = [obj.problem(path, message) for path, message in errors]
    entry = _SchemaEntry(obj, parsed, {})
    if parsed is None:
        return entry, problems
    versions = parsed.spec.versions
    ordered: list[tuple[int, SchemaVersion]] = []
    for index, version in enumerate(versions):
        where = f"spec.versions[{index}]"
        earlier = [i for i, v in enumerate(versions[:index]) if v.version == version.version]
        if earlier:
            problems.append(
                obj.problem(
                    f"{where}.version", f"duplicate version {version.version} (also spec.versions[{earlier[0]}])"
                )
            )
            continue
        if ordered and version.version < ordered[-1][1].version:
            problems.append(
                obj.problem(
                    f"{where}.version",
                    f"versions must increase: {version.version} comes after {ordered[-1][1].version}",
                )
            )
        usable = True
        for section, attr in SECTIONS:
            problem = compile_section(getattr(version, attr)).problem
            if problem is not None:
                usable = False
                problems.append(obj.problem(f"{where}.{section}", problem))
        if usable:
            entry.usable[version.version] = version
            ordered.append((index, version))
    ordered.sort(key=lambda pair: pair[1].version)
    problems.extend(_compatibility_problems(obj, parsed.spec.compatibility, ordered))
    return entry, problems


def _compatibility_problems(obj: _Object, mode: str, ordered: Sequence[tuple[int, SchemaVersion]]) -> Iterator[Problem]:
    index_of = {version.version: index for index, version in ordered}
    for problem in check_history([version for _, version in ordered], mode).problems:
        where = f"spec.versions[{index_of.get(problem.version or 0, 0)}]"
        path = f"{where}.{problem.path}" if problem.path else where
        against = f" with version {problem.against}" if problem.against is not None else ""
        yield obj.problem(
            path,
            f"{problem.code}: {problem.message} (version {problem.version} is not {mode} compatible{against})",
        )


# --- ModelDeployment ---------------------------------------------------------------------------------


def _check_deployment(obj: _Object, schemas: Sequence[_SchemaEntry]) -> Iterator[Problem]:
    body = obj.document.body
    parsed, errors = parse_manifest(ModelDeployment, body)
    for path, message in errors:
        yield obj.problem(path, message)
    # Even when the object is malformed elsewhere, check what can be checked: every problem at once.
    spec = body.get("spec") if isinstance(body, Mapping) else None
    spec = spec if isinstance(spec, Mapping) else {}
    ref = spec.get("schemaRef")
    model = spec.get("model")
    if not isinstance(ref, Mapping) or not isinstance(model, Mapping):
        return
    ref_name, ref_version = ref.get("name"), ref.get("version")
    if not isinstance(ref_name, str) or not isinstance(ref_version, int) or isinstance(ref_version, bool):
        return
    entry = _find_schema(schemas, ref_name, obj.namespace)
    if entry is None:
        known = sorted({s.obj.name for s in schemas})
        hint = hints.most_similar(ref_name, known)
        detail = f" (did you mean {hint!r}?)" if hint else (f" (found: {', '.join(known)})" if known else "")
        yield obj.problem(
            "spec.schemaRef.name",
            f"ModelSchema {ref_name!r} not found among the inputs{detail}; pass its file or use --schemas PATH",
        )
        return
    if entry.parsed is None:
        yield obj.problem("spec.schemaRef", f"ModelSchema {ref_name!r} is itself invalid (see its problems)")
        return
    declared = entry.parsed.spec.version(ref_version)
    if declared is None:
        numbers = ", ".join(str(v.version) for v in entry.parsed.spec.versions)
        yield obj.problem(
            "spec.schemaRef.version", f"ModelSchema {ref_name!r} has no version {ref_version} (versions: {numbers})"
        )
        return
    version = entry.usable.get(ref_version)
    if version is None:
        yield obj.problem(
            "spec.schemaRef.version", f"ModelSchema {ref_name!r} version {ref_version} is invalid (see its problems)"
        )
        return
    if version.deprecated:
        yield obj.problem(
            "spec.schemaRef.version", f"ModelSchema {ref_name!r} version {ref_version} is deprecated", "warning"
        )
    result = validate_model_config(
        version.model_dump(by_alias=True),
        model.get("labels", {}),
        model.get("metadata", {}),
        model.get("customObjects", {}),
    )
    reported = {path for path, _ in errors}
    for item in result.problems:
        path = f"spec.model.{item.path}"
        if path not in reported:  # a non-object section is already reported by the object check
            yield obj.problem(path, item.message)
    if parsed is not None and parsed.spec.promotion is not None and result.ok:
        yield from _check_promotion(obj, parsed, result.defaulted["metadata"])


def _find_schema(schemas: Sequence[_SchemaEntry], name: str, namespace: str | None) -> _SchemaEntry | None:
    """Same namespace first; an object without a namespace matches any (kubectl -n decides)."""
    candidates = [s for s in schemas if s.obj.name == name]
    exact = [s for s in candidates if s.obj.namespace == namespace]
    loose = [s for s in candidates if s.obj.namespace is None or namespace is None]
    matches = exact or loose
    return matches[0] if matches else None


def _check_promotion(obj: _Object, parsed: ModelDeployment, metadata: Mapping[str, Any]) -> Iterator[Problem]:
    gate = parsed.spec.promotion
    assert gate is not None
    value = metadata.get(gate.metric)
    if value is None:
        yield obj.problem("spec.promotion.metric", f"{gate.metric!r} is not in spec.model.metadata")
    elif not isinstance(value, int | float) or isinstance(value, bool):
        yield obj.problem(
            f"spec.model.metadata.{gate.metric}", f"promotion metric must be a number, found {hints.found(value)}"
        )
    elif gate.minimum is not None and value < gate.minimum:
        yield obj.problem(
            f"spec.model.metadata.{gate.metric}",
            f"{value} is below promotion.minimum {gate.minimum}: the rollout would be refused",
        )
