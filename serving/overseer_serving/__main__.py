"""`python -m overseer_serving` = `overseer serve`, for images and tests without the full CLI.

The flags are defined once, by `overseer.cli.add_serve_arguments`, so both commands accept the same.
"""

from __future__ import annotations

import argparse
import sys

from overseer.cli import add_serve_arguments

from overseer_serving.command import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="overseer serve", description="Run the serving process.")
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    return serve(args.model_file, args.token_file, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
