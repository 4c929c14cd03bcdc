"""Bench producers on the run kernel: one writer per folder, labels, staged rescoring and data,
progress through a callback, and the import direction (no library module imports the CLI)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gaspprobe import io
from gaspprobe.benchmarking.rescoring import score
from gaspprobe.benchmarking.runner import run
from gaspprobe.errors import DataError
from gaspprobe.runs import RunLock

FIX = Path(__file__).parent / "fixtures" / "bench"
VSI, AA = FIX / "vsi", FIX / "allangles"
PKG = Path(__file__).resolve().parents[1] / "gaspprobe"


def test_second_writer_on_the_same_out_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):  # another process (or command) holds the folder
        with pytest.raises(DataError) as e:
            run("baseline:random", "allangles", AA, out)
    msg = str(e.value)
    assert "in use by pid" in msg and str(out) in msg and "\n" not in msg
    assert not out.exists() or not (out / "predictions.jsonl").exists()  # nothing was written
    r = run("baseline:random", "allangles", AA, out)  # the lock is gone with its holder
    assert r.summary["n"] == 11


def test_two_cli_runs_on_one_out_never_interleave(tmp_path):
    """The issue's repro: baseline:random and baseline:frequency started together on one --out."""
    out = tmp_path / "run"
    code = ("import sys; from gaspprobe.cli import main; sys.argv=['gaspprobe','bench','run','--model',sys.argv[1],"
            f"'--benchmark','allangles','--data',{str(AA)!r},'--out',{str(out)!r},'--no-progress']; main()")
    hold = RunLock(out).acquire()  # make the race deterministic: the first "process" holds the folder
    try:
        p = subprocess.run([sys.executable, "-c", code, "baseline:frequency"], capture_output=True, text=True,
                           timeout=120)
    finally:
        hold.release()
    assert p.returncode == 2 and "in use by pid" in p.stderr and p.stderr.count("\n") == 1
    q = subprocess.run([sys.executable, "-c", code, "baseline:random"], capture_output=True, text=True, timeout=120)
    assert q.returncode == 0, q.stderr[-500:]
    recs = io.read_jsonl(out / "predictions.jsonl")
    assert len(recs) == 11 and len({r["id"] for r in recs}) == 11
    assert io.read_manifest(out)["model"] == "baseline:random"


def test_label_is_written_by_the_producer(tmp_path):
    run("oracle:answers", "allangles", AA, tmp_path / "r", label="gasp")
    m = io.read_manifest(tmp_path / "r")
    assert m["model_label"] == "gasp" and m["status"] == "complete" and m["kind"] == "bench"


def test_progress_goes_through_a_callback(tmp_path):
    seen = []
    run("oracle:answers", "allangles", AA, tmp_path / "r", batch_size=4, progress=seen.append)
    assert [e["done"] for e in seen] == [4, 8, 11] and all(e["total"] == 11 for e in seen)
    assert seen[-1]["score"] == pytest.approx(100.0)


def test_rescoring_is_staged_and_keyed_by_the_predictions_content(tmp_path):
    src = tmp_path / "src"
    run("oracle:answers", "allangles", AA, src)
    out = tmp_path / "re"
    r = score("allangles", AA, src / "predictions.jsonl", out, label="base")
    assert r.overall == pytest.approx(100.0) and io.read_manifest(out)["model_label"] == "base"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".re.") and p.is_dir()]  # no temp folder left
    again = score("allangles", AA, src / "predictions.jsonl", out)
    assert again.summary == r.summary
    recs = io.read_jsonl(src / "predictions.jsonl")
    changed = tmp_path / "changed.jsonl"
    changed.write_text("".join(json.dumps({**x, "raw": "C"}) + "\n" for x in recs))
    changed2 = src / "predictions.jsonl"
    changed2.write_text(changed.read_text())
    with pytest.raises(DataError, match="predictions_sha256"):
        score("allangles", AA, changed2, out)
    r2 = score("allangles", AA, changed2, out, force=True)
    assert r2.overall == pytest.approx(100 * sum(x["target"] == "C" for x in recs) / 11)


def test_rescoring_refuses_to_replace_a_generated_run(tmp_path):
    run("oracle:answers", "allangles", AA, tmp_path / "r")
    with pytest.raises(DataError, match="different"):
        score("allangles", AA, tmp_path / "r" / "predictions.jsonl", tmp_path / "r")
    assert io.read_manifest(tmp_path / "r")["config"].get("mode") is None  # the run is intact


def test_synthesize_is_staged_cached_and_replaced_when_scenes_change(tmp_path):
    from gaspprobe.benchmarking.synthetic import synthesize
    from gaspprobe.scenes.synthetic import generate_scene

    sc = [generate_scene(s, frames=6, size=64) for s in range(2)]
    out = tmp_path / "data"
    a = synthesize(sc, out, format="allangles", label="heldout")
    m = io.read_manifest(out)
    assert m["kind"] == "bench_data" and m["model_label"] == "heldout" and m["info"]["n"] == a["n"]
    mtime = (out / "data.json").stat().st_mtime_ns
    assert synthesize(sc, out, format="allangles") == a and (out / "data.json").stat().st_mtime_ns == mtime
    other = [generate_scene(s, frames=6, size=64) for s in (5, 6)]
    synthesize(other, out, format="allangles")
    assert {r["folder"] for r in json.loads((out / "data.json").read_text())} == {s.name for s in other}
    assert not (out / sc[0].name).exists() or sc[0].name in {s.name for s in other}


def test_no_library_module_imports_the_cli():
    offenders = []
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG).as_posix()
        if rel.startswith("cli/") or f.name == "__main__.py":  # entry points are the CLI's
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "gaspprobe.cli" or n.startswith("gaspprobe.cli.") for n in names):
                offenders.append(rel)
    assert not offenders, offenders


def test_wait_waits_for_the_holder_then_runs(tmp_path):
    import threading
    import time

    out = tmp_path / "run"
    hold = RunLock(out).acquire()
    t = threading.Timer(1.0, hold.release)
    t.start()
    t0 = time.perf_counter()
    r = run("oracle:answers", "allangles", AA, out, wait=True)
    t.join()
    assert time.perf_counter() - t0 >= 0.9 and r.overall == pytest.approx(100.0)


def test_killed_run_resumes_and_keeps_what_was_scored(tmp_path):
    class Crash:
        name = "crash"

        def __init__(self, after):
            self.after, self.calls = after, 0

        def generate(self, batch, max_new_tokens=16):
            if self.calls >= self.after:
                raise KeyboardInterrupt
            self.calls += 1
            return ["B"] * len(batch)

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(Crash(3), "allangles", AA, out, label="base")
    before = io.read_jsonl(out / "predictions.jsonl")
    assert len(before) == 3 and io.read_manifest(out)["status"] == "running"
    ok = Crash(100)
    r = run(ok, "allangles", AA, out, label="base")
    after = {x["id"]: x for x in io.read_jsonl(out / "predictions.jsonl")}
    assert ok.calls == 8 and r.summary["n"] == 11
    assert all(after[x["id"]] == x for x in before)  # nothing already scored was redone or lost
