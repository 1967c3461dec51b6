"""`python -m overseer_serving` = `overseer serve`, for images and tests without the full CLI."""

from __future__ import annotations

import argparse
import sys

from overseer_serving.command import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="overseer serve", description="Run the serving process.")
    parser.add_argument("--model-file", help="model document (default: $OVERSEER_MODEL_FILE)")
    parser.add_argument("--token-file", help="admin bearer token file (default: $OVERSEER_ADMIN_TOKEN_FILE)")
    parser.add_argument("--host", help="IP address to bind (default: $OVERSEER_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: $OVERSEER_PORT or 3000)")
    args = parser.parse_args(argv)
    return serve(args.model_file, args.token_file, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
