"""Admission decisions as pure functions: an object (and what the webhook looked up) in, a Review out.

The webhook handlers (handlers.py, through AdmissionService) only look things up and call these;
the reconciler calls `review_deployment` too, because webhooks can be bypassed. Messages are the
project's own (`overseer validate` says the same thing about the same mistake): field path,
expected, found, rename hint. The schema core is called from here only (check_object,
check_history, validate_model_config), so re-pointing those calls is a change to this module alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from overseer.api.v1alpha1 import API_VERSION
from overseer.checks import check_object
from overseer.operator.render import serving_problems
from overseer.schema import hints
from overseer.schema.compatibility import VersionProblem, check_history
from overseer.schema.validation import validate_model_config

MAX_PROBLEMS_SHOWN = 20
SERVED_METADATA_KEY = "metadata"
"""status.history entries carry the served model's metadata (the notWorseThanCurrent gate reads it)."""

JSONObject = dict[str, Any]


@dataclass(frozen=True)
class Review:
    allowed: bool
    message: str = ""
    code: int = 200
    warnings: tuple[str, ...] = ()
    patch: tuple[JSONObject, ...] = ()
    """RFC 6902 operations on the whole object (mutating webhook)."""
    problems: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    """(field path, message) of each error, for status conditions."""

    @classmethod
    def allow(cls, warnings: Iterable[str] = (), patch: Iterable[JSONObject] = ()) -> Review:
        return cls(True, warnings=tuple(warnings), patch=tuple(patch))

    @classmethod
    def deny(
        cls, problems: Sequence[tuple[str, str]], *, code: int = 422, warnings: Iterable[str] = (), subject: str = ""
    ) -> Review:
        return cls(False, format_problems(problems, subject), code, tuple(warnings), problems=tuple(problems))


def format_problems(problems: Sequence[tuple[str, str]], subject: str = "") -> str:
    """`path: message` for one problem; a count and one problem per line for several."""
    lines = [f"{path}: {message}" if path else message for path, message in problems[:MAX_PROBLEMS_SHOWN]]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        lines.append(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    if len(lines) == 1:
        return f"{subject}: {lines[0]}" if subject else lines[0]
    head = f"{subject}: {len(problems)} problems" if subject else f"{len(problems)} problems"
    return head + ":\n" + "\n".join(f"- {line}" for line in lines)


# --- helpers over raw bodies ---------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def spec_of(body: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _mapping(_mapping(body).get("spec"))


def spec_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    try:
        return spec_of(old) != spec_of(new)
    except RecursionError:  # nested too deep to compare: taken as changed, and the checks say why
        return True


def writes_a_spec(operation: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """A CREATE, or an UPDATE that changes the spec: what the webhooks check. Anything else (an
    UPDATE of metadata or status only, a DELETE or CONNECT) has nothing of the contract to check."""
    return operation == "CREATE" or (operation == "UPDATE" and spec_changed(old, new))


def checkable(body: Mapping[str, Any], namespace: str | None = None) -> JSONObject:
    """The parts of an object the checks judge: apiVersion, kind, metadata, spec - never status,
    which the operator writes; the namespace of the request when the object does not carry it."""
    out = {key: body[key] for key in ("apiVersion", "kind", "metadata", "spec") if key in body}
    metadata = dict(_mapping(out.get("metadata")))
    if namespace and not metadata.get("namespace"):
        metadata["namespace"] = namespace
    # Only what the checks read: a stored object's managedFields can be large.
    out["metadata"] = {k: metadata[k] for k in ("name", "namespace", "labels", "annotations") if k in metadata}
    return out


def schema_version(schema: Mapping[str, Any] | None, number: Any) -> Mapping[str, Any] | None:
    for version in spec_of(schema).get("versions") or []:
        if isinstance(version, Mapping) and version.get("version") == number and not isinstance(number, bool):
            return version
    return None


def latest_version(schema: Mapping[str, Any] | None) -> int | None:
    numbers: list[int] = [
        v["version"]
        for v in spec_of(schema).get("versions") or []
        if isinstance(v, Mapping) and isinstance(v.get("version"), int)
    ]
    return max(numbers) if numbers else None


def _name(body: Mapping[str, Any] | None) -> str:
    return str(_mapping(_mapping(body).get("metadata")).get("name") or "")


def _schema_ref(body: Mapping[str, Any] | None) -> tuple[Any, Any]:
    ref = _mapping(spec_of(body).get("schemaRef"))
    return ref.get("name"), ref.get("version")


def _narrowed(schema: Mapping[str, Any], number: Any) -> JSONObject:
    """The ModelSchema with only the referenced version: a deployment is judged against that
    version alone (the schema's own history was checked when it was admitted)."""
    body = {"apiVersion": API_VERSION, "kind": "ModelSchema", **checkable(schema)}
    version = schema_version(schema, number)
    if version is not None:
        body["spec"] = {**spec_of(schema), "versions": [version]}
    return body


# --- ModelDeployment -------------------------------------------------------------------------------


def default_deployment(body: Mapping[str, Any], schema: Mapping[str, Any] | None) -> list[JSONObject]:
    """JSON patch operations that fill in the referenced schema version's defaults; [] when the
    reference or the config cannot be resolved (the validating webhook then says why)."""
    ref_name, number = _schema_ref(body)
    version = schema_version(schema, number) if schema is not None and _name(schema) == ref_name else None
    model = spec_of(body).get("model")
    if version is None or not isinstance(model, Mapping):
        return []
    sections = [model.get(key, {}) for key in ("labels", "metadata", "customObjects")]
    if not all(isinstance(section, Mapping) for section in sections):
        return []
    result = validate_model_config(version, *sections)
    if any(problem.path.startswith("schema.") for problem in result.problems):
        return []
    return [{**op, "path": "/spec/model" + op["path"]} for op in result.patch]


def review_deployment(
    operation: str,
    body: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    schema: Mapping[str, Any] | None,
    *,
    namespace: str | None = None,
    schemas_in_namespace: Sequence[str] = (),
) -> Review:
    """Create/update of a ModelDeployment. `schema`: the ModelSchema its schemaRef names, found in
    its namespace (None when there is none); `schemas_in_namespace`: names, for a hint."""
    if operation == "UPDATE" and old is not None and not spec_changed(old, body):
        return Review.allow()  # labels, annotations, finalizers, owner references: not ours to judge
    namespace = namespace or _mapping(body.get("metadata")).get("namespace")
    ref_name, ref_version = _schema_ref(body)
    known = [_narrowed(schema, ref_version)] if schema is not None else []
    problems = check_object(checkable(body, namespace), known)
    errors: list[tuple[str, str]] = []
    warnings: list[str] = []
    for problem in problems:
        message = problem.message
        if problem.path == "spec.schemaRef.name" and schema is None:
            message = _schema_not_found(str(ref_name), namespace, schemas_in_namespace)
        if problem.severity == "warning":
            warnings.append(f"{problem.path}: {message}")
        else:
            errors.append((problem.path, message))
    errors.extend(serving_problems(spec_of(body)))
    if errors:
        return Review.deny(errors, warnings=warnings)
    latest = latest_version(schema)
    if latest is not None and isinstance(ref_version, int) and ref_version < latest:
        warnings.append(
            f"spec.schemaRef.version: ModelSchema {hints.quote(str(ref_name))} has a newer version {latest} "
            f"(this deployment uses version {ref_version})"
        )
    if operation == "UPDATE" and old is not None:
        warnings.extend(digest_warnings(old, body))
        gate = promotion_gate(old, body)
        if gate is not None:
            return Review.deny([gate], warnings=warnings)
    return Review.allow(warnings)


def _schema_not_found(name: str, namespace: str | None, names: Sequence[str]) -> str:
    where = f"namespace {hints.quote(namespace)}" if namespace else "this namespace"
    hint = hints.most_similar(name, names)
    if hint is not None:
        detail = f"; did you mean {hint!r}?"
    elif names:
        shown = ", ".join(sorted(names)[:10])
        detail = f" (ModelSchemas there: {shown}{', ...' if len(names) > 10 else ''})"
    else:
        detail = " (it has no ModelSchemas: apply the schema first)"
    return f"ModelSchema {hints.quote(name)} not found in {where}{detail}"


def digest_warnings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The pods cache weights by digest: a digest that does not move with version/uri (or moves
    alone) is almost always a mistake in the manifest."""
    before, after = _mapping(spec_of(old).get("model")), _mapping(spec_of(new).get("model"))
    moved = [key for key in ("version", "uri") if before.get(key) != after.get(key)]
    if before.get("digest") == after.get("digest") and moved:
        changed = " and ".join(f"spec.model.{key}" for key in moved)
        return [
            f"spec.model.digest: unchanged while {changed} changed: the pods keep serving the weights "
            "they have (weights are cached by digest); set the digest of the new weights"
        ]
    if before.get("digest") != after.get("digest") and not moved and before.get("digest"):
        return [
            "spec.model.digest: changed while spec.model.version and spec.model.uri did not: the same "
            "version now pins different weights; give the new weights a new version"
        ]
    return []


def served_metric(old: Mapping[str, Any], metric: str) -> tuple[str, Any] | None:
    """(model identity, value of `metric`) of the model served now, from the old object's status;
    None when nothing is served or its metadata is unknown."""
    status = _mapping(_mapping(old).get("status"))
    served = _mapping(status.get("model"))
    digest = served.get("digest")
    if not digest:
        return None
    identity = f"{served.get('name')} {served.get('version')}"
    model = _mapping(spec_of(old).get("model"))
    if model.get("digest") == digest and metric in _mapping(model.get("metadata")):
        return identity, _mapping(model.get("metadata"))[metric]
    for item in status.get("history") or []:
        entry = _mapping(item)
        metadata = _mapping(entry.get(SERVED_METADATA_KEY))
        if entry.get("digest") == digest and metric in metadata:
            return identity, metadata[metric]
    return None


def promotion_gate(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, str] | None:
    """The notWorseThanCurrent gate (the `minimum` part is checked with the config): a problem when
    a new model's metric is below the served model's."""
    gate = _mapping(spec_of(new).get("promotion"))
    if not gate.get("notWorseThanCurrent") or not isinstance(gate.get("metric"), str):
        return None
    before, after = spec_of(old).get("model"), _mapping(spec_of(new).get("model"))
    if before == after:
        return None
    if _in_history(old, after):
        return None  # served everywhere before: going back to it is a rollback, not a promotion
    metric = gate["metric"]
    value = _mapping(after.get("metadata")).get(metric)
    current = served_metric(old, metric)
    if current is None or not _is_number(value) or not _is_number(current[1]):
        return None
    if value < current[1]:
        return (
            f"spec.model.metadata.{metric}",
            f"{hints.show(value)} is below {hints.show(current[1])}, the {metric} of the model served now "
            f"({current[0]}): promotion.notWorseThanCurrent refuses it",
        )
    return None


def _in_history(old: Mapping[str, Any], model: Mapping[str, Any]) -> bool:
    """`model` (name, version, digest) is an entry of status.history: every pod served it once."""
    identity = tuple(model.get(k) for k in ("name", "version", "digest"))
    history = _mapping(_mapping(old).get("status")).get("history") or []
    return any(tuple(_mapping(e).get(k) for k in ("name", "version", "digest")) == identity for e in history)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- ModelSchema -------------------------------------------------------------------------------------


def schema_usage(schema_name: str, deployments: Iterable[Mapping[str, Any]]) -> dict[int, list[str]]:
    """version -> names of the ModelDeployments (not being deleted) that reference it."""
    usage: dict[int, list[str]] = {}
    for body in deployments:
        if _mapping(body.get("metadata")).get("deletionTimestamp"):
            continue
        name, version = _schema_ref(body)
        if name == schema_name and isinstance(version, int) and not isinstance(version, bool):
            usage.setdefault(version, []).append(_name(body))
    return {version: sorted(names) for version, names in sorted(usage.items())}


def review_schema(
    operation: str,
    body: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    usage: Mapping[int, Sequence[str]],
) -> Review:
    """Create/update of a ModelSchema: valid JSON Schemas; registered versions unchanged and still
    present; every new version compatible with the earlier ones per spec.compatibility.

    On an update only the versions added are judged for compatibility (as a schema registry does):
    the registered ones were judged when they were added, so changing spec.compatibility applies
    to the versions that come next.
    """
    if operation == "UPDATE" and old is not None and not spec_changed(old, body):
        return Review.allow()
    validity = schema_validity(body)  # every section usable, versions unique and increasing ...
    if not validity.allowed:
        return validity
    # ... then the history, in one walk: registration and compatibility problems.
    registered = _versions(old) if operation == "UPDATE" and old is not None else []
    mode = str(spec_of(body).get("compatibility") or "BACKWARD")
    history = check_history(_versions(body), mode, registered=registered)
    errors = [_history_problem(problem, body, mode, usage) for problem in history.problems]
    warnings = _deprecation_warnings(old, body, usage) if registered and old is not None else []
    if errors:
        return Review.deny(errors, warnings=warnings)
    return Review.allow(warnings)


def schema_validity(body: Mapping[str, Any]) -> Review:
    """A ModelSchema's own validity, compatibility aside: every section a usable JSON Schema,
    versions unique and increasing (what its status reports; admission adds the history)."""
    validity = checkable(body)
    validity["spec"] = {**spec_of(body), "compatibility": "NONE"}
    errors = [(p.path, p.message) for p in check_object(validity) if p.severity == "error"]
    return Review.deny(errors) if errors else Review.allow()


def _versions(body: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return [v for v in spec_of(body).get("versions") or [] if isinstance(v, Mapping)]


def _history_problem(
    problem: VersionProblem, body: Mapping[str, Any], mode: str, usage: Mapping[int, Sequence[str]]
) -> tuple[str, str]:
    """(field path, message) of one history problem, in the words of `overseer validate`."""
    index_of = {v.get("version"): i for i, v in enumerate(_versions(body))}
    number = problem.version
    if problem.code == "VERSION_REMOVED":
        users = usage.get(number, []) if number is not None else []
        text = (
            f"{problem.code}: registered version {number} was removed; registered versions are immutable "
            "(retire it with deprecated: true instead)"
        )
        if users:
            text += f"; it is in use by ModelDeployment{'s' if len(users) > 1 else ''} {', '.join(users)}"
        return "spec.versions", text
    where = f"spec.versions[{index_of[number]}]" if number in index_of else "spec.versions"
    path = f"{where}.{problem.path}" if problem.path else where
    if problem.code == "VERSION_MODIFIED":
        next_number = (latest_version(body) or 0) + 1
        return path, (
            f"{problem.code}: registered version {number} is immutable; add the change as version {next_number} instead"
        )
    against = f" with version {problem.against}" if problem.against is not None else ""
    return path, f"{problem.code}: {problem.message} (version {number} is not {mode} compatible{against})"


def _deprecation_warnings(
    old: Mapping[str, Any], new: Mapping[str, Any], usage: Mapping[int, Sequence[str]]
) -> list[str]:
    warnings = []
    for version in spec_of(new).get("versions") or []:
        number = _mapping(version).get("version")
        before = schema_version(old, number)
        if _mapping(version).get("deprecated") and before is not None and not before.get("deprecated"):
            users = usage.get(number, []) if isinstance(number, int) else []
            if users:
                warnings.append(
                    f"version {number} is now deprecated and still used by ModelDeployment"
                    f"{'s' if len(users) > 1 else ''} {', '.join(users)}"
                )
    return warnings


def review_schema_delete(
    old: Mapping[str, Any], usage: Mapping[int, Sequence[str]], *, namespace_terminating: bool
) -> Review:
    """Deleting a ModelSchema that deployments still reference would strand them; deleting the
    whole namespace (which removes the deployments too) must still complete."""
    if namespace_terminating or not usage:
        return Review.allow()
    users = [f"{name} (version {version})" for version, names in usage.items() for name in names]
    message = (
        f"ModelSchema {hints.quote(_name(old))} is in use by ModelDeployment{'s' if len(users) > 1 else ''} "
        f"{', '.join(users)}: delete them or point them at another schema first"
    )
    return Review.deny([("", message)], code=409)


__all__ = [
    "Review",
    "checkable",
    "default_deployment",
    "digest_warnings",
    "format_problems",
    "latest_version",
    "promotion_gate",
    "review_deployment",
    "review_schema",
    "review_schema_delete",
    "schema_usage",
    "schema_validity",
    "schema_version",
    "served_metric",
    "spec_changed",
]
