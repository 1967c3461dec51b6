"""The operator on the session's local cluster: one operator process per test module (it dies with
the test process, even a killed one); tests get a fresh namespace each (support.cluster)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from localcluster.overseer_operator import remove_webhooks
from localcluster.stack import Stack
from operator_support import Operator


@pytest.fixture(scope="module")
def operator(local_cluster: Stack) -> Iterator[Operator]:
    handle = Operator(local_cluster.dir)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()
        # Later modules run without an operator: leave no webhook pointing at a dead one.
        remove_webhooks(local_cluster.dir)
