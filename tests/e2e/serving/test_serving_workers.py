"""Two BentoML workers in one pod: a PUT to one worker reaches the other, and each worker gives the
same right answer before and after; GET reports both; a worker that does not follow leaves the
whole pod on the old model."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from overseer_devtools.shapes import Scene
from serving_harness import ModelFile, Server, assert_sees, running
from support.polling import wait_for

FOLLOW_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def pod(models: dict[str, ModelFile], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"OVERSEER_FOLLOW_TIMEOUT_S": str(FOLLOW_TIMEOUT_S)}
    with running(tmp_path_factory.mktemp("pod"), models["a"].document(), workers=2, env=env) as server:
        yield server


def detect_digests(server: Server, image_bytes: bytes, n: int = 12) -> set[str]:
    """Fresh connections land on either worker: the models the pod answers from."""
    seen = set()
    for _ in range(n):
        with httpx.Client(base_url=server.url, timeout=60) as c:
            r = c.post("/detect", files={"image": ("x.png", image_bytes, "image/png")})
        assert r.status_code == 200, r.text
        seen.add(r.json()["model"]["digest"])
    return seen


def answer_of_each_worker(server: Server, image_bytes: bytes) -> dict[int, dict[str, Any]]:
    """/detect answered by each worker in turn: the others are stopped (SIGSTOP) meanwhile, so the
    one left running is the one that accepts the connection."""
    workers: list[dict[str, Any]] = server.model()["workers"]
    answers = {}
    for worker in workers:
        others = [w["pid"] for w in workers if w["worker"] != worker["worker"]]
        for pid in others:
            os.kill(pid, signal.SIGSTOP)
        try:
            with httpx.Client(base_url=server.url, timeout=60) as c:
                r = c.post("/detect", files={"image": ("x.png", image_bytes, "image/png")})
        finally:
            for pid in others:
                os.kill(pid, signal.SIGCONT)
        assert r.status_code == 200, r.text
        answers[worker["worker"]] = r.json()
    return answers


def assert_same_right_answer(answers: dict[int, dict[str, Any]], model: ModelFile, scene: Scene) -> None:
    first = answers[1]
    assert first["model"]["digest"] == model.digest
    assert all(a == first for a in answers.values()), answers
    assert_sees(first["detections"], scene)


def current_and_other(server: Server, models: dict[str, ModelFile]) -> tuple[ModelFile, ModelFile]:
    """Of the two good models, the one serving and the other."""
    digest = server.model()["model"]["digest"]
    a, b = models["a"], models["b"]
    assert digest in (a.digest, b.digest)
    return (a, b) if digest == a.digest else (b, a)


def test_swap_reaches_every_worker(
    pod: Server, models: dict[str, ModelFile], scene: Scene, image_bytes: bytes
) -> None:
    old, new = current_and_other(pod, models)
    workers = pod.model()["workers"]
    assert [w["worker"] for w in workers] == [1, 2]
    assert len({w["pid"] for w in workers}) == 2
    assert all(w["model"]["digest"] == old.digest and w["state"] == "serving" for w in workers)
    generation = workers[0]["generation"]
    before = answer_of_each_worker(pod, image_bytes)
    assert sorted(before) == [1, 2]
    assert_same_right_answer(before, old, scene)

    with pod.admin() as c:
        answer = c.put("/admin/model", json=new.document())
    assert answer.status_code == 200, answer.text
    reported = answer.json()["workers"]
    assert [(w["worker"], w["model"]["digest"], w["generation"]) for w in reported] == [
        (1, new.digest, generation + 1),
        (2, new.digest, generation + 1),
    ]
    assert detect_digests(pod, image_bytes) == {new.digest}
    assert {w["model"]["digest"] for w in pod.model()["workers"]} == {new.digest}
    after = answer_of_each_worker(pod, image_bytes)
    assert_same_right_answer(after, new, scene)
    assert after[1]["detections"] != before[1]["detections"]  # another model's own answer, not a stale one


def test_a_worker_that_does_not_follow_leaves_the_pod_on_the_old_model(
    pod: Server, models: dict[str, ModelFile], scene: Scene, image_bytes: bytes
) -> None:
    old, new = current_and_other(pod, models)
    workers: list[dict[str, Any]] = pod.model()["workers"]
    generation = workers[0]["generation"]
    # A stopped worker accepts no connection: the other one takes the PUT and leads the swap.
    stuck = workers[1]
    os.kill(stuck["pid"], signal.SIGSTOP)
    try:
        with pod.admin() as c:
            answer = c.put("/admin/model", json=new.document())
    finally:
        os.kill(stuck["pid"], signal.SIGCONT)
    assert answer.status_code == 504, answer.text
    error = answer.json()["error"]
    assert error["reason"] == "worker_failed"
    assert error["message"].startswith(
        f"workers [{stuck['worker']}] did not report generation {generation + 1} within {FOLLOW_TIMEOUT_S} s; "
        f"rolling the pod back to {old.name}:{old.version} (generation {generation + 2}) failed too"
    )

    # Once the stuck worker runs again it goes straight to the rolled-back generation: the old model.
    def settled() -> list[dict[str, Any]] | None:
        statuses: list[dict[str, Any]] = pod.model()["workers"]
        return statuses if all(w["generation"] == generation + 2 for w in statuses) else None

    statuses = wait_for(settled, 30, "both workers to report the rolled-back generation")
    assert [(w["state"], w["model"]["digest"]) for w in statuses] == [("serving", old.digest)] * 2
    assert httpx.get(f"{pod.url}/readyz", timeout=10).status_code == 200
    assert detect_digests(pod, image_bytes) == {old.digest}
    assert_same_right_answer(answer_of_each_worker(pod, image_bytes), old, scene)
