"""`python -m overseer.operator`: run the operator in this process (local mode, tests).

Flags override the OVERSEER_* environment; the rest of the settings come from it. Local mode:

    python -m overseer.operator --kubeconfig .cluster/kubeconfig --webhook-mode url \\
        --webhook-port 9443 --webhook-cert-dir .cluster/operator/certs

registers the webhooks with a url clientConfig on 127.0.0.1 and serves them from this process.
SIGTERM or SIGINT stops it; the webhook configurations stay (failurePolicy Fail: while the
operator is down, overseer.dev objects are refused, nothing else is affected).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m overseer.operator", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig (default: in-cluster, then $KUBECONFIG)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", dest="namespaces", help="serve this namespace (repeat)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="serve every namespace (default)")
    parser.add_argument("--webhook-mode", choices=["url", "service", "none"])
    parser.add_argument("--webhook-host", help="url mode: the IP the API server calls")
    parser.add_argument("--webhook-addr", help="address the webhook server listens on")
    parser.add_argument("--webhook-port", type=int)
    parser.add_argument("--webhook-cert-dir", type=Path)
    parser.add_argument("--metrics-addr")
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--liveness-port", type=int)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)

    import kopf

    from overseer.operator import handlers  # noqa: F401  # registers the handlers
    from overseer.operator.settings import OperatorSettings

    overrides = {
        key: value
        for key, value in vars(args).items()
        if value is not None and key not in ("all_namespaces", "verbose")
    }
    try:
        settings = OperatorSettings(**overrides)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            where = ".".join(str(part) for part in item["loc"])
            print(f"overseer operator: invalid setting {where}: {item['msg']}", file=sys.stderr)
        return 2
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    liveness = f"http://{settings.metrics_addr}:{settings.liveness_port}/healthz" if settings.liveness_port else None
    kopf.run(
        standalone=True,  # no peering: one operator per cluster (Kopf has no leader election)
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=liveness,
        memo=kopf.Memo(config=settings),
    )
    # Kopf has stopped and the runtime is closed: skip the interpreter's teardown, which takes
    # seconds for this import graph and has nothing left to release (a restart waits for it).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
