"""The chart installed into the session's local cluster, the way `make up` installs it: one
`helm install` per test module (a release and namespace of its own), uninstalled when the module
ends, so later modules (the operator's own tests start a local-process operator) find no webhook
of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chart_support import unique
from localcluster.overseer_operator import ChartRelease, install_chart, uninstall_chart
from localcluster.stack import Stack
from support.cluster import Kubectl


@pytest.fixture(scope="module")
def release(local_cluster: Stack, kubectl_admin: Kubectl) -> Iterator[ChartRelease]:
    name = unique("overseer")
    chart = install_chart(local_cluster.dir, release=name, namespace=name)
    try:
        yield chart
    finally:
        uninstall_chart(chart)
        kubectl_admin.run("delete", "namespace", chart.namespace, "--wait=false", "--ignore-not-found", check=False)
