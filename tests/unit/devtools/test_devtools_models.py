"""The model cache of `make models`: keyed by the recipe, made once, safe with several processes.

Training itself is replaced by a fake maker here (it takes minutes); the e2e tier serves the real
models, and `make models` makes them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from overseer.api.model_document import sha256_file
from overseer_devtools import models

HACK = str(Path(models.__file__).parents[1])


class FakeMaker:
    """Writes bytes that depend only on the recipe (and parent), as the real trainer's do."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, Path | None]] = []
        self.fail = fail

    def __call__(
        self, recipe: dict[str, Any], out: Path, parent: models.TrainedModel | None, log: Path, config: Path
    ) -> dict[str, Any]:
        self.calls.append((out.name, parent.path if parent else None))
        out.write_bytes(json.dumps(recipe, sort_keys=True).encode() + (parent.digest.encode() if parent else b""))
        if self.fail:
            raise RuntimeError("making it failed (exit 1)")
        return {"seconds": 1.5, "map50": 0.99}


@pytest.fixture
def maker(monkeypatch: pytest.MonkeyPatch) -> FakeMaker:
    fake = FakeMaker()
    monkeypatch.setattr(models, "_run_maker", fake)
    return fake


def leftovers(folder: Path) -> list[str]:
    """Anything in the cache that is neither a finished model nor a lock or log."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith((".pt", ".json", ".lock", ".log")))


def test_a_model_is_made_once_then_found_in_the_cache(tmp_path: Path, maker: FakeMaker) -> None:
    first = models.shapes_model("shapes-v1", cache=tmp_path, log=False)
    again = models.shapes_model("shapes-v1", cache=tmp_path, log=False)
    assert len(maker.calls) == 1
    assert again == first
    key = models.recipe_key("shapes-v1")
    assert first.path == tmp_path / f"shapes-v1-{key}.pt"
    assert first.digest == sha256_file(first.path)
    meta = json.loads(first.path.with_suffix(".json").read_text())
    assert (meta["digest"], meta["recipe"], meta["map50"]) == (first.digest, models.RECIPES["shapes-v1"], 0.99)
    assert leftovers(tmp_path) == []


def test_a_derived_model_is_made_from_its_parent(tmp_path: Path, maker: FakeMaker) -> None:
    swapped = models.shapes_model("shapes-swapped", cache=tmp_path, log=False)
    v1 = models.shapes_model("shapes-v1", cache=tmp_path, log=False)
    assert [(name.split("-")[1], parent) for name, parent in maker.calls] == [("v1", None), ("swapped", v1.path)]
    assert swapped.digest != v1.digest
    assert models.recipe_key("shapes-swapped", v1) != models.recipe_key("shapes-swapped", swapped)


def test_the_key_follows_the_recipe_and_the_library_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    key = models.recipe_key("shapes-v1")
    assert models.recipe_key("shapes-v1") == key
    assert models.recipe_key("shapes-v2") != key
    monkeypatch.setitem(models.RECIPES["shapes-v1"], "train", {**models.RECIPES["shapes-v1"]["train"], "epochs": 31})
    assert models.recipe_key("shapes-v1") != key
    monkeypatch.undo()
    real_version = models.importlib.metadata.version
    monkeypatch.setattr(
        models.importlib.metadata, "version", lambda lib: "99.0" if lib == "torch" else real_version(lib)
    )
    assert models.recipe_key("shapes-v1") != key


def test_the_key_follows_code_not_comments_or_docstrings(tmp_path: Path) -> None:
    source = tmp_path / "trainer.py"
    source.write_text('"""Trains."""\n\ndef train(n):\n    """Train n epochs."""\n    return n * 2  # twice\n')
    key = models._source_digest(str(source))
    source.write_text('"""Trains a model."""\n\n\ndef train(n):\n    # reworded\n    return n * 2\n')
    assert models._source_digest(str(source)) == key
    source.write_text('"""Trains."""\n\ndef train(n):\n    return n * 3\n')
    assert models._source_digest(str(source)) != key


def test_what_a_killed_maker_left_is_removed_before_making_again(tmp_path: Path, maker: FakeMaker) -> None:
    key = models.recipe_key("shapes-v1")
    stale = tmp_path / f".shapes-v1-{key}.abc123"  # a maker's folder; its process was killed
    stale.mkdir()
    (stale / f"shapes-v1-{key}.pt").write_bytes(b"half-written")
    models.shapes_model("shapes-v1", cache=tmp_path, log=False)
    assert not stale.exists()
    assert leftovers(tmp_path) == []


def test_a_damaged_file_is_made_again(tmp_path: Path, maker: FakeMaker) -> None:
    made = models.shapes_model("shapes-v1", cache=tmp_path, log=False)
    made.path.write_bytes(b"damaged")
    again = models.shapes_model("shapes-v1", cache=tmp_path, log=False)
    assert len(maker.calls) == 2
    assert again.digest == made.digest == sha256_file(again.path)


def test_a_failed_make_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_run_maker", FakeMaker(fail=True))
    with pytest.raises(RuntimeError, match="failed"):
        models.shapes_model("shapes-v1", cache=tmp_path, log=False)
    assert [p.name for p in tmp_path.glob("*.pt")] == []
    assert [p.name for p in tmp_path.glob("*.json")] == []
    assert leftovers(tmp_path) == []


CONCURRENT = """
import json, os, sys, time
from pathlib import Path
from overseer_devtools import models

def fake(recipe, out, parent, log, config):
    with open(sys.argv[2], "a") as f:
        f.write(out.name + "\\n")
    time.sleep(1.0)  # long enough for the other process to ask meanwhile
    out.write_bytes(json.dumps(recipe, sort_keys=True).encode())
    return {"seconds": 1.0, "map50": 1.0}

models._run_maker = fake
model = models.shapes_model("shapes-v1", cache=Path(sys.argv[1]), log=False)
print(model.path, model.digest)
"""


def test_two_processes_asking_at_once_make_the_model_once(tmp_path: Path) -> None:
    cache, made = tmp_path / "cache", tmp_path / "made.txt"
    env = {**os.environ, "PYTHONPATH": HACK}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(cache), str(made)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert len(made.read_text().splitlines()) == 1
    assert outputs[0] == outputs[1] and outputs[0].strip().endswith(sha256_file(next(cache.glob("*.pt"))))
    assert leftovers(cache) == []


def test_the_command_prints_name_path_digest_per_model(
    tmp_path: Path, maker: FakeMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    assert models.main(["--cache", str(tmp_path), "shapes-v2", "shapes-truncated"]) == 0
    lines = [line.split(" ") for line in capsys.readouterr().out.splitlines()]
    assert [line[0] for line in lines] == ["shapes-v2", "shapes-truncated"]
    for name, path, digest in lines:
        assert digest == sha256_file(Path(path)) and Path(path).parent == tmp_path, name
    with pytest.raises(SystemExit) as exit_info:
        models.main(["--cache", str(tmp_path), "shapes-v9"])
    assert exit_info.value.code == 2
    assert "unknown model shapes-v9; known: shapes-v1, shapes-v2" in capsys.readouterr().err
    with pytest.raises(KeyError, match="no model 'nope'"):
        models.shapes_model("nope", cache=tmp_path)


NETWORK = """
import socket, sys
from overseer_devtools import training
training._forbid_network()
listener = socket.create_server(("127.0.0.1", 0))
socket.create_connection(listener.getsockname(), timeout=5).close()  # loopback stays usable
for attempt in (lambda: socket.getaddrinfo("github.com", 443), lambda: socket.socket().connect(("192.0.2.1", 80))):
    try:
        attempt()
    except OSError as error:
        print("refused:", error)
"""


def test_training_refuses_every_connection_that_is_not_loopback() -> None:
    env = {**os.environ, "PYTHONPATH": HACK}
    result = subprocess.run(
        [sys.executable, "-c", NETWORK], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines() == [
        "refused: network access disabled while training (look up 'github.com')",
        "refused: network access disabled while training (connect ('192.0.2.1', 80))",
    ]
    assert result.stderr.count("training must stay offline") == 2
