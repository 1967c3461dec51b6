"""The `overseer` command: validate manifests, diff schema versions, run the serving process.

The CLI boundary: every expected failure becomes a one-line message and an exit code
(0 valid, 1 invalid, 2 usage or read error); no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

SERVING_EXTRA_HINT = "overseer serve needs the serving extra: pip install 'schema-overseer[serving]'"

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own exit code for usage errors is 2 as well; keep its one-line style.
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="overseer", description="Model-config contracts for Kubernetes: validate, diff, serve.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    serve = commands.add_parser("serve", help="run the model serving process (needs the serving extra)")
    serve.add_argument("--model-file", help="model document to start from (default: $OVERSEER_MODEL_FILE)")
    serve.add_argument("--token-file", help="admin bearer token file (default: $OVERSEER_ADMIN_TOKEN_FILE)")
    serve.add_argument("--host", help="address to listen on")
    serve.add_argument("--port", type=int, help="port to listen on (default: $OVERSEER_PORT)")
    serve.set_defaults(handler=_serve)
    return parser


def _serve(args: argparse.Namespace) -> int:
    try:
        from overseer_serving.command import serve
    except ImportError:
        print(SERVING_EXTRA_HINT, file=sys.stderr)
        return EXIT_USAGE
    return int(serve(model_file=args.model_file, token_file=args.token_file, host=args.host, port=args.port))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    handler = args.handler
    return int(handler(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
