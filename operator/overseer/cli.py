"""The `overseer` command: validate manifests, diff schema versions, run the serving process.

This is the CLI boundary: every expected failure becomes a one-line message and an exit code
(0 valid, 1 invalid, 2 usage or read error). No traceback reaches the user; an unexpected
exception is reported in one line as an internal error (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from overseer import registry
from overseer.api.v1alpha1 import COMPATIBILITY_MODES, KINDS, ModelSchema, SchemaVersion
from overseer.checks import Problem, Report, check_documents
from overseer.deployment_new import command as deployment_command
from overseer.manifests import (
    STDIN,
    Document,
    ReadError,
    SchemaFileError,
    collect_sources,
    expand_lists,
    parse_documents,
    pick_version,
    read_model_schema,
    read_source,
    split_version,
)
from overseer.schema.compatibility import (
    BreakingChange,
    CompatibilityReport,
    check_compatibility,
    check_history,
)
from overseer.text import one_line
from overseer.version import version

SERVING_EXTRA_HINT = "overseer serve needs the serving extra: pip install 'schema-overseer[serving]'"

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A one-line reason to exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="overseer", description="Model-config contracts for Kubernetes: validate, diff, serve.")
    parser.add_argument("--version", action="version", version=f"overseer {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    validate = commands.add_parser(
        "validate",
        help="check ModelSchema and ModelDeployment manifests (no cluster needed)",
        description="Check every ModelSchema and ModelDeployment in the given YAML files, folders or stdin (-). "
        "Other kinds are skipped. Exit 0 when all are valid, 1 when any is invalid, 2 on usage or read errors.",
    )
    # nargs="*" so that a missing PATH gets our own message (see _validate), not argparse's.
    validate.add_argument("paths", nargs="*", metavar="PATH", help="YAML/JSON file, folder (recursive), or - for stdin")
    validate.add_argument(
        "--schemas",
        # `--schemas PATH...` is the documented contract (design.md); extend also lets it repeat.
        action="extend",
        nargs="+",
        default=[],
        metavar="PATH",
        help="files or folders holding ModelSchemas that deployments reference (their other objects are ignored)",
    )
    validate.add_argument(
        "--schemas-from-cluster",
        action="store_true",
        help="also read the ModelSchemas of each deployment's namespace from the cluster (read-only: get/list); "
        "kubeconfig or in-cluster config; needs the operator extra",
    )
    validate.add_argument("--context", metavar="NAME", help="kubeconfig context for --schemas-from-cluster")
    validate.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    validate.set_defaults(handler=_validate)

    schema = commands.add_parser("schema", help="work with ModelSchema versions")
    schema_commands = schema.add_subparsers(dest="schema_command", metavar="COMMAND", parser_class=_Parser)
    schema_commands.required = True
    diff = schema_commands.add_parser(
        "diff",
        help="list breaking changes between two schema versions",
        description="Compare two ModelSchema versions. OLD and NEW are YAML files holding a ModelSchema; FILE#N "
        "picks version N (default: the highest). Exit 1 when NEW is not compatible with OLD under MODE.",
    )
    diff.add_argument("old", metavar="OLD", help="FILE or FILE#VERSION")
    diff.add_argument("new", metavar="NEW", help="FILE or FILE#VERSION")
    diff.add_argument(
        "--mode",
        type=str.upper,
        choices=COMPATIBILITY_MODES,
        help="compatibility mode (default: NEW's spec.compatibility)",
    )
    diff.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    diff.set_defaults(handler=_diff)

    deployment_command.add_parser(commands)

    # The serving package owns the serve flags (and its --help): everything after `serve` is handed to it.
    serve = commands.add_parser(
        "serve", help="run the model serving process (needs the serving extra; serve --help)", add_help=False
    )
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args, rest = parser.parse_known_args(list(argv) if argv is not None else None)
        if args.command == "serve":
            args.serve_args = rest
        elif rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except UsageError as error:
        _err(str(error))
        return EXIT_USAGE
    except SystemExit as stop:  # --help, or argparse exiting on its own
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `overseer validate ... | head`
        return EXIT_OK
    except Exception as error:  # the CLI boundary: one line, never a traceback
        _err(f"overseer: internal error: {type(error).__name__}: {error}")
        return EXIT_USAGE


def _err(message: str) -> None:
    print(one_line(message), file=sys.stderr)


# --- validate ----------------------------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> int:
    if not args.paths and not args.schemas:
        raise UsageError("overseer validate: no PATH given: files, folders, or - for stdin")
    if not args.paths:
        # `--schemas` takes every PATH after it, so `validate --schemas s.yaml deploy.yaml` has none left.
        raise UsageError(
            "overseer validate: no PATH to check; put PATHs before --schemas, or end the --schemas list "
            "with --: overseer validate --schemas schemas/ -- deploy/"
        )
    read_errors: list[str] = []
    stdin_used = [False]
    documents = _load(args.paths, read_errors, stdin_used)
    extra = _load(args.schemas, read_errors, stdin_used)
    cluster = _cluster_schemas(args, documents.documents, [*documents.documents, *extra.documents])
    report = check_documents(documents.documents, [*extra.documents, *cluster.documents])
    if cluster.where is not None:
        report.problems = registry.adjust_problems(report.problems, cluster)
    problems = sorted(
        [*documents.syntax, *extra.syntax, *report.problems],
        key=lambda p: (p.source, p.index, p.path),
    )
    if args.output == "json":
        print(json.dumps([p.to_json() for p in problems], indent=2))
    else:
        for problem in problems:
            print(problem)
    for message in read_errors:
        _err(f"overseer: {message}")
    errors = report.errors + len(documents.syntax) + len(extra.syntax)
    _err(_summary(report, errors, documents.files + extra.files, len(read_errors)))
    if read_errors:
        return EXIT_USAGE
    return EXIT_INVALID if errors else EXIT_OK


def _cluster_schemas(
    args: argparse.Namespace, documents: list[Document], local_schemas: list[Document]
) -> registry.ClusterSchemas:
    """--schemas-from-cluster: the ModelSchemas of the deployments' namespaces; any cluster failure is exit 2."""
    if not args.schemas_from_cluster:
        if args.context is not None:
            raise UsageError("overseer validate: --context needs --schemas-from-cluster")
        return registry.ClusterSchemas([], None)
    try:
        return registry.read_cluster_schemas(documents, local_schemas, context=args.context)
    except registry.ClusterAccessError as error:
        raise UsageError(f"overseer: {error}") from error


@dataclass
class _Loaded:
    documents: list[Document]
    syntax: list[Problem]
    files: int


def _load(paths: Sequence[str], read_errors: list[str], stdin_used: list[bool]) -> _Loaded:
    loaded = _Loaded([], [], 0)
    sources: list[str] = []
    for path in paths:  # one unreadable path must not hide the problems of the others
        try:
            sources.extend(s for s in collect_sources([path]) if s not in sources)
        except ReadError as error:
            read_errors.append(str(error))
    for source in sources:
        if source == STDIN:
            if stdin_used[0]:
                raise UsageError("overseer: stdin (-) can be read only once")
            stdin_used[0] = True
        try:
            text = read_source(source)
        except ReadError as error:
            read_errors.append(str(error))
            continue
        loaded.files += 1
        docs, syntax = parse_documents(text, source)
        loaded.documents.extend(expand_lists(docs))
        loaded.syntax.extend(Problem(s.source, s.index, s.line, None, None, None, "", s.message) for s in syntax)
    return loaded


def _summary(report: Report, errors: int, files: int, read_errors: int) -> str:
    def plural(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    checked = f"{plural(report.schemas, 'ModelSchema')} and {plural(report.deployments, 'ModelDeployment')}"
    text = f"overseer: checked {checked} in {plural(files, 'file')}"
    if report.skipped:
        text += f" ({plural(report.skipped, 'other object')} skipped)"
    text += f": {plural(errors, 'error')}"
    if report.warnings:
        text += f", {plural(report.warnings, 'warning')}"
    if read_errors:
        text += f", {plural(read_errors, 'unreadable input')}"
    elif not report.schemas and not report.deployments and not errors:
        text += f" - no {' or '.join(KINDS)} found"
    return text


# --- schema diff -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Picked:
    label: str
    schema: ModelSchema
    version: SchemaVersion
    explicit: bool


def _pick(argument: str) -> _Picked:
    """FILE or FILE#N -> one ModelSchema version; UsageError (exit 2) when that is impossible."""
    try:
        path, number = split_version(argument)
        schema = read_model_schema(path)
        version = pick_version(schema, number, path)
    except SchemaFileError as error:
        raise UsageError(f"overseer: {error}") from error
    return _Picked(argument, schema, version, number is not None)


def _diff(args: argparse.Namespace) -> int:
    old, new = _pick(args.old), _pick(args.new)
    mode = args.mode or new.schema.spec.compatibility
    registered: list[BreakingChange] = []
    if old.explicit or new.explicit:
        if new.version.version < old.version.version:
            # Almost always swapped arguments; comparing backwards would check the wrong direction.
            raise UsageError(
                f"overseer: NEW {args.new} is version {new.version.version}, older than OLD {args.old} "
                f"(version {old.version.version}); usage: overseer schema diff OLD NEW"
            )
        reports = [check_compatibility(old.version, new.version, mode)]
    else:
        # Whole files (a merge request), checked as admission checks an UPDATE: registered versions
        # stay untouched, and every version NEW adds is checked against the history as the mode
        # requires, not just the highest one.
        history = check_history(new.schema.spec.versions, mode, registered=old.schema.spec.versions)
        registered, reports = history.registered, history.reports
    changes = [*registered, *(c for r in reports for c in r.changes)]
    if args.output == "json":
        print(json.dumps(_diff_json(old, new, mode, registered, reports), indent=2))
    else:
        labelled = len(reports) > 1  # the same field may break in several pairs: say which
        for change in registered:
            print(one_line(str(change)))
        for report in reports:
            for change in report.changes:
                print(one_line(f"{change}{_pair(report) if labelled else ''}"))
        for report in reports:
            for notice in report.notices:
                print(one_line(f"note: {notice}{_pair(report) if labelled else ''}"))
        print(_diff_summary(old, new, mode, reports, len(changes)))
    return EXIT_INVALID if changes else EXIT_OK


def _pair(report: CompatibilityReport) -> str:
    return f" (version {report.new_version} vs {report.old_version})"


def _versions(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"version {numbers[0]}"
    return f"versions {', '.join(str(n) for n in numbers[:-1])} and {numbers[-1]}"


def _diff_summary(old: _Picked, new: _Picked, mode: str, reports: list[CompatibilityReport], changes: int) -> str:
    name = new.schema.metadata.name
    count = f"{changes} breaking change{'' if changes == 1 else 's'}"
    checked = list(dict.fromkeys(r.new_version for r in reports if r.new_version is not None))
    if not checked:
        state = count if changes else "registered versions unchanged"
        return f"{name}: no version after version {old.version.version} to check; {state}"
    subject = f"{name} {_versions(checked)}"
    if len(reports) == 1:
        against = f"version {reports[0].old_version}"
    else:
        against = "every earlier version" if mode.endswith("_TRANSITIVE") else "the version before each"
    if mode == "NONE" and not changes:
        return f"{subject} vs {against}: mode NONE, compatibility not checked"
    verb = "is" if len(checked) == 1 else "are"
    if not changes:
        return f"{subject} {verb} {mode} compatible with {against}"
    return f"{subject} {verb} not {mode} compatible with {against}: {count}"


def _diff_json(
    old: _Picked, new: _Picked, mode: str, registered: list[BreakingChange], reports: list[CompatibilityReport]
) -> Any:
    def side(picked: _Picked) -> dict[str, Any]:
        return {"file": picked.label, "name": picked.schema.metadata.name, "version": picked.version.version}

    def change(item: BreakingChange, report: CompatibilityReport | None = None) -> dict[str, Any]:
        pair = {"old_version": report.old_version, "new_version": report.new_version} if report else {}
        return {"code": item.code, "path": item.path, "message": item.message, "direction": item.direction, **pair}

    changes = [change(c) for c in registered] + [change(c, r) for r in reports for c in r.changes]
    return {
        "mode": mode,
        "compatible": not changes,
        "old": side(old),
        "new": side(new),
        "checked": [{"old_version": r.old_version, "new_version": r.new_version} for r in reports],
        "changes": changes,
        "notices": [change(n, r) for r in reports for n in r.notices],
    }


# --- serve -------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    """The one way from this CLI into the serving package (which imports nothing of this module)."""
    try:
        from overseer_serving.command import main as serve_main
    except ImportError:
        _err(SERVING_EXTRA_HINT)
        return EXIT_USAGE
    return int(serve_main(args.serve_args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
