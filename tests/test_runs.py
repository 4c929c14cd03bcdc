"""The run kernel (gaspprobe/runs.py): decisions, refusals, atomic publish and the folder lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gaspprobe import io
from gaspprobe.errors import DataError
from gaspprobe.runs import diff_keys, open_run, swap_in


def _publish(out: Path, cfg: dict, payload: str, **kw) -> str:
    with open_run(out, "probe", cfg, identity={"model": "m"}, **kw) as run:
        if run.cached:
            return "cached"
        (run.dir / "data.txt").write_text(payload)
        run.complete()
        return run.decision


def test_fresh_then_cached_then_refused_naming_the_keys(tmp_path):
    out = tmp_path / "run"
    assert _publish(out, {"a": 1, "b": {"c": 2}}, "x") == "fresh"
    assert _publish(out, {"a": 1, "b": {"c": 2}}, "y") == "cached"
    assert (out / "data.txt").read_text() == "x"
    with pytest.raises(DataError) as e:
        _publish(out, {"a": 1, "b": {"c": 3}}, "z")
    msg = str(e.value)
    assert "\n" not in msg and str(out) in msg and "config.b.c" in msg and "config.a" not in msg
    with pytest.raises(DataError, match="model"):
        with open_run(out, "probe", {"a": 1, "b": {"c": 2}}, identity={"model": "other"}):
            pass


def test_replace_and_force_start_fresh(tmp_path):
    out = tmp_path / "run"
    _publish(out, {"a": 1}, "x")
    assert _publish(out, {"a": 2}, "y", on_change="replace") == "fresh"
    assert (out / "data.txt").read_text() == "y"
    assert _publish(out, {"a": 2}, "z", force=True) == "fresh"
    assert (out / "data.txt").read_text() == "z"


def test_label_seed_and_manifest_keys(tmp_path):
    out = tmp_path / "run"
    with open_run(out, "probe", {"a": (1, 2)}, identity={"model": "m"}, seed=7, label="base") as run:
        run.complete(summary={"x": float("nan")})
    m = io.read_manifest(out, kind="probe")
    assert m["status"] == "complete" and m["model_label"] == "base" and m["seed"] == 7
    assert m["model"] == "m" and m["config"] == {"a": [1, 2]} and m["summary"] == {"x": None}
    # the tuple -> list round trip does not make the same config look different
    with open_run(out, "probe", {"a": (1, 2)}, identity={"model": "m"}) as run:
        assert run.cached


def test_other_kind_and_foreign_folders_refused(tmp_path):
    out = tmp_path / "run"
    _publish(out, {"a": 1}, "x")
    with pytest.raises(DataError, match="'probe' run, not a 'train' run"):
        open_run(out, "train", {"a": 1})
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not a gaspprobe run"):
        open_run(foreign, "probe", {})
    with pytest.raises(DataError, match="not a gaspprobe scenes run"):
        open_run(foreign, "scenes", {}, publish="incremental", on_change="replace")
    assert (foreign / "thesis.tex").read_text() == "precious"
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(DataError, match="not a folder"):
        open_run(afile, "probe", {})


def test_incremental_resume_keeps_work_and_completes(tmp_path):
    out = tmp_path / "bench"
    with open_run(out, "bench", {"n": 3}, publish="incremental") as run:
        assert run.decision == "fresh" and run.dir == out
        run.start()
        (out / "part1").write_text("done")
        # killed here: no complete()
    assert io.read_manifest(out)["status"] == "running"
    with open_run(out, "bench", {"n": 3}, publish="incremental") as run:
        assert run.resumed and (out / "part1").exists()
        run.complete(n_done=3)
    with open_run(out, "bench", {"n": 3}, publish="incremental") as run:
        assert run.cached
    # another config replaces an incremental run only when asked, and then starts from empty
    with open_run(out, "bench", {"n": 4}, publish="incremental", on_change="replace") as run:
        assert run.decision == "fresh" and not (out / "part1").exists()


def test_failed_staged_publish_keeps_the_old_run(tmp_path):
    out = tmp_path / "run"
    _publish(out, {"a": 1}, "old")
    with pytest.raises(RuntimeError):
        with open_run(out, "probe", {"a": 1}, identity={"model": "m"}, force=True) as run:
            (run.dir / "data.txt").write_text("half")
            raise RuntimeError("killed mid-run")
    assert (out / "data.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.tmp")] == []


def test_swap_in_restores_the_old_run_when_the_second_rename_fails(tmp_path, monkeypatch):
    out, new = tmp_path / "out", tmp_path / "new"
    out.mkdir()
    (out / "f").write_text("old")
    new.mkdir()
    (new / "f").write_text("new")
    real = os.rename
    calls = []

    def flaky(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(a, b)

    monkeypatch.setattr(os, "rename", flaky)
    with pytest.raises(OSError):
        swap_in(new, out)
    assert (out / "f").read_text() == "old"


def test_diff_keys():
    assert diff_keys({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": [1, 3]}, "d": 0}) == ["b.c", "d"]
    assert diff_keys({"a": 1}, {"a": 1}) == []


_HOLDER = textwrap.dedent("""
    import sys, time
    from gaspprobe.runs import open_run
    run = open_run(sys.argv[1], "bench", {"n": 1}, publish="incremental")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    run.close()
""")


def _start_holder(out: Path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out), str(seconds)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "holding"
    return p


def test_second_process_is_refused_naming_the_holder_then_waits(tmp_path):
    out = tmp_path / "bench"
    p = _start_holder(out, 3.0)
    try:
        with pytest.raises(DataError) as e:
            open_run(out, "bench", {"n": 1}, publish="incremental")
        assert f"pid {p.pid}" in str(e.value) and "\n" not in str(e.value)
        t0 = time.monotonic()
        with open_run(out, "bench", {"n": 1}, publish="incremental", wait=True) as run:
            assert time.monotonic() - t0 > 0.5  # it waited for the holder to finish
            assert run.decision in ("fresh", "resume")
    finally:
        p.wait(timeout=30)


def test_lock_of_a_killed_process_does_not_block(tmp_path):
    out = tmp_path / "bench"
    p = _start_holder(out, 60.0)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    with open_run(out, "bench", {"n": 1}, publish="incremental") as run:
        assert run.decision == "fresh"


_WRITER = textwrap.dedent("""
    import sys, time
    from gaspprobe.runs import open_run
    with open_run(sys.argv[1], "probe", {"v": int(sys.argv[2])}, force=True) as run:
        for i in range(200):
            (run.dir / f"part{i:03d}.txt").write_text(sys.argv[2])
            if i == 5:
                print("writing", flush=True)
            time.sleep(0.01)
        run.complete()
""")


def test_a_kill_during_a_staged_run_leaves_the_old_run_or_the_new_one(tmp_path):
    out = tmp_path / "run"
    subprocess.run([sys.executable, "-c", _WRITER, str(out), "1"], check=True, timeout=120)
    p = subprocess.Popen([sys.executable, "-c", _WRITER, str(out), "2"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    values = {f.read_text() for f in out.glob("part*.txt")}
    assert values == {"1"} and len(list(out.glob("part*.txt"))) == 200
    assert io.read_manifest(out)["config"] == {"v": 1}
    # the next run cleans the killed run's temp folder away
    subprocess.run([sys.executable, "-c", _WRITER, str(out), "3"], check=True, timeout=120)
    assert {f.read_text() for f in out.glob("part*.txt")} == {"3"}
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name] == []
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_a_staged_run_gets_the_permissions_of_a_plain_folder(tmp_path):
    umask = os.umask(0o022)
    try:
        _publish(tmp_path / "run", {"a": 1}, "x")
        plain = tmp_path / "plain"
        plain.mkdir()
        assert (tmp_path / "run").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(umask)
