"""``gaspprobe model tiny`` / ``build_tiny`` through the run kernel (kind "model", staged)."""

from __future__ import annotations

import json

import pytest

from gaspprobe.errors import DataError
from gaspprobe.models import build_tiny, load

pytestmark = pytest.mark.slow


def test_tiny_is_a_model_run_cached_refused_and_forced(tmp_path):
    d = tmp_path / "m"
    assert build_tiny("llava", d, seed=1) == d
    m = json.loads((d / "manifest.json").read_text())
    assert m["kind"] == "model" and m["status"] == "complete" and m["config"] == {"arch": "llava", "seed": 1}
    assert m["model_type"] == "llava" and m["num_parameters"] > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.tmp")]  # the staging folder is gone
    stamp = (d / "model.safetensors").stat().st_mtime_ns
    build_tiny("llava", d, seed=1)  # same arch and seed: the finished folder, untouched
    assert (d / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(DataError) as e:  # another seed into the same folder: one line naming the key
        build_tiny("llava", d, seed=2)
    assert "config" in str(e.value) and str(d) in str(e.value) and "\n" not in str(e.value)
    build_tiny("llava", d, seed=2, force=True)
    assert json.loads((d / "manifest.json").read_text())["config"]["seed"] == 2
    assert load(d).spec.model_type == "llava"


def test_tiny_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a gaspprobe run"):
        build_tiny("llava", tmp_path / "x")
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"
