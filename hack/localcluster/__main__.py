"""`python -m localcluster up|down|status|logs` - what `make up` and `make down` run."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .stack import StackError, is_healthy, start_stack, stop_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster", description="local Kubernetes control plane")
    parser.add_argument("command", choices=["up", "down", "status", "logs"])
    parser.add_argument("pod", nargs="?", help="for logs: NAMESPACE/POD (prefix match)")
    parser.add_argument("--dir", type=Path, default=Path(".cluster"))
    args = parser.parse_args(argv)
    if args.command == "up":
        t0 = time.monotonic()
        try:
            stack = start_stack(args.dir)
        except StackError as e:
            print(f"localcluster: {e}", file=sys.stderr)
            return 1
        print(f"local cluster up in {time.monotonic() - t0:.1f}s: {stack.apiserver_url}")
        print(f"  export KUBECONFIG={stack.kubeconfig} PATH={stack.dir / 'bin'}:$PATH")
        print("  kubectl get nodes")
        return 0
    if args.command == "down":
        stop_stack(args.dir)
        print("local cluster stopped")
        return 0
    if args.command == "status":
        healthy = is_healthy(args.dir)
        print("running" if healthy else "not running")
        return 0 if healthy else 1
    pods = sorted((args.dir / "pods").glob("*/container.log"))
    wanted = (args.pod or "").replace("/", "_")
    for log in pods:
        if log.parent.name.startswith(wanted):
            print(f"==> {log.parent.name}")
            print(log.read_text(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
