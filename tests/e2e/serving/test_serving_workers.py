"""Two BentoML workers in one pod: a PUT to one worker reaches the other; GET reports both."""

from __future__ import annotations

from pathlib import Path

import httpx
from serving_harness import ModelFile, running


def test_swap_reaches_every_worker(tmp_path: Path, models: dict[str, ModelFile], image_bytes: bytes) -> None:
    old, new = models["a"], models["b"]
    with running(tmp_path, old.document(), workers=2) as server:
        workers = server.model()["workers"]
        assert [w["worker"] for w in workers] == [1, 2]
        assert len({w["pid"] for w in workers}) == 2
        assert all(w["model"]["digest"] == old.digest and w["state"] == "serving" for w in workers)

        with server.admin() as c:
            answer = c.put("/admin/model", json=new.document())
        assert answer.status_code == 200, answer.text
        reported = answer.json()["workers"]
        assert [(w["worker"], w["model"]["digest"], w["generation"]) for w in reported] == [
            (1, new.digest, 2),
            (2, new.digest, 2),
        ]

        # Fresh connections land on either worker: every answer comes from the new model.
        seen = set()
        for _ in range(12):
            with httpx.Client(base_url=server.url, timeout=60) as c:
                r = c.post("/detect", files={"image": ("x.jpg", image_bytes, "image/jpeg")})
            assert r.status_code == 200, r.text
            seen.add(r.json()["model"]["digest"])
        assert seen == {new.digest}
        assert {w["model"]["digest"] for w in server.model()["workers"]} == {new.digest}
