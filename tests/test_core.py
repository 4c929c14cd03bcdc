"""Unit tests of the shared core: registry, config validation, atomic writes, manifests."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from gaspprobe import config as C
from gaspprobe import io
from gaspprobe.errors import ConfigError, GaspError
from gaspprobe.registry import Registry


def test_registry_lazy_and_did_you_mean():
    r = Registry("metric")
    r.register("fabs", "math:fabs")
    assert r.get("fabs")(-2.0) == 2.0
    with pytest.raises(GaspError, match=r"did you mean 'fabs'.*supported: fabs"):
        r.get("fab")


@dataclass
class _Cfg:
    gaps: list[int] = C.field(default_factory=lambda: [1, 2], help="frame gaps")
    tol: float = C.field(0.05, help="relative depth tolerance")
    name: str = C.field("x", help="a name")


def test_config_rejects_unknown_key_and_wrong_type(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('gapz = [1]\n')
    with pytest.raises(ConfigError, match=r"r.toml: unknown key 'gapz' \(did you mean 'gaps'\?\)"):
        C.load(_Cfg, p)
    p.write_text('gaps = "1,2"\n')
    with pytest.raises(ConfigError, match=r"gaps: expected list\[int\], got str"):
        C.load(_Cfg, p)
    p.write_text('tol = 1\ngaps = [4]\n')
    cfg = C.load(_Cfg, p, overrides={"name": "y", "tol": None})
    assert cfg == _Cfg(gaps=[4], tol=1.0, name="y") and isinstance(cfg.tol, float)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "a.json"
    io.atomic_write_json(p, {"v": 1})

    def boom(*a, **k):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(RuntimeError):
        io.atomic_write_json(p, {"v": 2})
    assert io.read_json(p) == {"v": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]  # no temp litter


def test_jsonl_drops_partial_last_line(tmp_path):
    p = tmp_path / "p.jsonl"
    with io.JsonlAppender(p) as w:
        w.write({"id": 1})
        w.write({"id": 2, "x": float("nan")})
    with open(p, "a") as f:
        f.write('{"id": 3, "trunc')  # a killed writer
    assert [r["id"] for r in io.read_jsonl(p)] == [1, 2]
    assert io.read_jsonl(p)[1]["x"] is None
    with io.JsonlAppender(p) as w:  # reopening repairs the file before appending
        w.write({"id": 3})
    assert [r["id"] for r in io.read_jsonl(p)] == [1, 2, 3]


def test_manifest_roundtrip_and_completion(tmp_path):
    cfg = _Cfg()
    io.write_manifest(tmp_path, io.make_manifest("probe", cfg, seed=0))
    assert not io.is_complete(tmp_path, kind="probe")
    m = io.read_manifest(tmp_path, kind="probe")
    m["status"] = "complete"
    io.write_manifest(tmp_path, m)
    assert io.is_complete(tmp_path, kind="probe", config=cfg)
    assert not io.is_complete(tmp_path, kind="probe", config=_Cfg(tol=0.1))
    with pytest.raises(GaspError, match="expected 'train'"):
        io.read_manifest(tmp_path, kind="train")
    with pytest.raises(GaspError, match="not a gaspprobe run"):
        io.read_manifest(tmp_path / "nope" if False else tmp_path.parent)


@dataclass
class _Checked:
    n: int = C.field(1, help="must be >= 1")

    def __post_init__(self):
        if self.n < 1:
            raise ConfigError(f"n: must be >= 1, got {self.n}")


def test_value_checks_in_post_init_name_the_file(tmp_path):
    """A dataclass's own value check raised while loading a file names that file (from_dict does it
    for every config, so no loader has to)."""
    p = tmp_path / "c.toml"
    p.write_text("n = 0\n")
    with pytest.raises(ConfigError, match=r"c.toml: n: must be >= 1, got 0"):
        C.load(_Checked, p)
    with pytest.raises(ConfigError, match=r"^n: must be >= 1"):  # no file: no path
        C.from_dict(_Checked, {"n": 0})
