"""Reliability, part 2: ``kill -9`` at random points, then a rerun; nothing lost, nothing half-written.

For each long-running command (``train``, ``probe``, ``bench run``, ``loop``) a child process runs
the real CLI on tiny inputs and is killed with SIGKILL at points drawn from a seeded RNG (two seeds
per command; train and bench are killed twice in a row on the same run folder, so a resumed run is
itself killed); after every kill the folder is scanned: every visible file must parse completely
(JSON, parquet, safetensors, PNG, MP4, every complete JSONL line; temp files are hidden dot-files
that readers ignore). A final rerun must end with results identical to an uninterrupted reference
run, which runs concurrently (one per command, shared by its seeds):

- train: the same weights, bitwise (every tensor of ``model/model.safetensors`` and
  ``heads.safetensors``), the same training log;
- bench: the same predictions, and samples finished before a kill are never recomputed (the
  JSONL records written before the kill are still the first lines of the file, unchanged, and no
  id is recorded twice);
- probe: identical tables;
- loop: identical probe tables, training weights and bench predictions in every stage.

Kill points: a child is killed at ``t_ready + U(0, window)`` where ``t_ready`` is when the run
folder first shows work (its manifest or first JSONL record), so kills land in the work rather than
in interpreter start-up. Each kill test is ``slow`` (a few child processes of ~3-10 s each).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]

CHILD = [sys.executable, "-c", "import sys; from gaspprobe.cli import main; main(sys.argv[1:])"]
ENV = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
           HF_DATASETS_OFFLINE="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


# --------------------------------------------------------------------------- helpers
def start(argv: list) -> subprocess.Popen:
    return subprocess.Popen(CHILD + [str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)


def finish(p: subprocess.Popen, timeout: float = 300) -> str:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}"
    return out


def kill_at(argv: list, ready, window: float, rng: random.Random, timeout: float = 120) -> bool:
    """Start ``argv``, wait until ``ready()`` is true, sleep U(0, window), SIGKILL. True if it was killed."""
    p = start(argv)
    t0 = time.monotonic()
    while p.poll() is None and not ready() and time.monotonic() - t0 < timeout:
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, window))
    killed = p.poll() is None
    if killed:
        os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=60)
    if not killed:
        assert p.returncode == 0, f"child failed before the kill: exit {p.returncode}"
    return killed


def kill_until_interrupted(argv: list, run: Path, ready, window: float, rng: random.Random,
                           tries: int = 4) -> bool:
    """Kill (see :func:`kill_at`) until a kill leaves ``run`` unfinished; a run that completed before
    the kill landed is deleted and started again with a narrower window. Scans after every kill."""
    import shutil

    for t in range(tries):
        if status(run) == "complete":
            shutil.rmtree(run)
        killed = kill_at(argv, ready, window * 0.5 ** t, rng)
        scan_complete_files(run)
        if killed and status(run) != "complete":
            return True
    return False


def scan_complete_files(root: Path) -> dict[str, int]:
    """Every visible file under ``root`` parses completely; returns counts by kind.

    Hidden files/folders (``.name``: atomic-write temps, checkpoint temps) are skipped: they are
    invisible to every reader. A JSONL file may end in a partial line (a killed appender): every
    complete line must parse, and ``gaspprobe.io.read_jsonl`` must drop the partial one.
    """
    import pandas as pd
    from PIL import Image
    from safetensors import safe_open

    from gaspprobe.io import read_jsonl

    counts: dict[str, int] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        suf = p.suffix.lower()
        try:
            if suf == ".json":
                json.loads(p.read_text(encoding="utf-8"))
            elif suf == ".jsonl":
                data = p.read_text(encoding="utf-8")
                lines = data.split("\n")
                for ln in lines[:-1]:  # complete lines
                    if ln.strip():
                        json.loads(ln)
                assert len(read_jsonl(p)) == sum(1 for ln in lines[:-1] if ln.strip())
            elif suf == ".parquet":
                pd.read_parquet(p)
            elif suf == ".csv":
                pd.read_csv(p)
            elif suf == ".safetensors":
                with safe_open(str(p), framework="pt") as f:
                    for k in f.keys():
                        f.get_tensor(k)
            elif suf == ".png":
                with Image.open(p) as im:
                    im.load()
            elif suf == ".mp4":
                import av

                with av.open(str(p)) as c:
                    assert sum(1 for _ in c.decode(video=0)) > 0
            else:
                continue
        except Exception as e:  # noqa: BLE001 - any failure to parse is the finding
            raise AssertionError(f"half-written or unreadable file after kill -9: {rel} ({type(e).__name__}: {e})")
        counts[suf] = counts.get(suf, 0) + 1
    return counts


def safetensors_equal(a: Path, b: Path) -> None:
    """Same tensor names, dtypes, shapes and bytes (bitwise: -0.0 vs 0.0 or NaN payloads count)."""
    import torch
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    assert sorted(ta) == sorted(tb), f"{a.name}: different tensor names"
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and ta[k].shape == tb[k].shape, k
        bytes_a = ta[k].contiguous().reshape(-1).view(torch.uint8)
        bytes_b = tb[k].contiguous().reshape(-1).view(torch.uint8)
        assert torch.equal(bytes_a, bytes_b), f"{a.name}: {k} not bitwise equal"


def tables_equal(a: Path, b: Path, drop: tuple[str, ...] = ()) -> None:
    import pandas as pd

    da, db = pd.read_parquet(a), pd.read_parquet(b)
    da = da.drop(columns=[c for c in drop if c in da.columns])
    db = db.drop(columns=[c for c in drop if c in db.columns])
    pd.testing.assert_frame_equal(da, db, check_exact=True)


def status(run: Path) -> str | None:
    try:
        return json.loads((run / "manifest.json").read_text())["status"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


# --------------------------------------------------------------------------- shared inputs
@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Tiny model, 2+2 scenes (4 frames, 64x64), a tiny train config, synthetic VSI data."""
    from gaspprobe.benchmarking.synthetic import synthesize
    from gaspprobe.models import build_tiny
    from gaspprobe.scenes import make_scenes

    root = tmp_path_factory.mktemp("kill")
    build_tiny("qwen2_5_vl", root / "model", seed=0)
    make_scenes(root / "scenes", n_scenes=2, frames=4, size=64, seed=0)
    make_scenes(root / "heldout", n_scenes=2, frames=4, size=64, seed=7)
    cfg = root / "train.toml"
    cfg.write_text("steps = 8\nbatch_size = 1\nframes_per_clip = 2\nclips_per_scene = 2\ncheckpoint_every = 2\n"
                   "eval_every = 0\nwarmup_steps = 1\nlora_rank = 4\nthreads = 1\n")
    synthesize(root / "heldout", root / "vsi", format="vsibench")
    return {"root": root, "model": root / "model", "scenes": root / "scenes", "heldout": root / "heldout",
            "cfg": cfg, "vsi": root / "vsi"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """``reference(name, argv_fn) -> folder``: an uninterrupted run, started on first request (so it
    runs concurrently with that test's kills) and shared by every seed of the test."""
    runs: dict[str, tuple[Path, subprocess.Popen]] = {}
    done: set[str] = set()

    def start_ref(name, argv_fn):
        if name not in runs:
            d = tmp_path_factory.mktemp(f"ref_{name}") / "run"
            runs[name] = (d, start(argv_fn(d)))
        return runs[name][0]

    def wait_ref(name, timeout=600):
        if name not in done:
            finish(runs[name][1], timeout=timeout)
            done.add(name)
        return runs[name][0]

    start_ref.wait = wait_ref
    yield start_ref
    for _, p in runs.values():
        if p.poll() is None:
            p.kill()
            p.communicate()


SEEDS = [1, 2]
KILLS = 2  # kills per seed on the same folder (probe: 1, it keeps no partial state to resume from)


# --------------------------------------------------------------------------- train
@pytest.mark.parametrize("seed", SEEDS)
def test_kill_train_resume_bitwise(seed, inputs, reference, tmp_path):
    def argv(out):
        return ["train", "-m", inputs["model"], "-s", inputs["scenes"], "-o", out, "-c", inputs["cfg"],
                "--resume", "--no-progress", "--threads", "1"]

    run = tmp_path / "run"
    reference("train", argv)
    rng = random.Random(10 + seed)
    kills = 0
    for _ in range(KILLS):  # the second kill hits the resumed run
        kills += kill_until_interrupted(argv(run), run, lambda: status(run) is not None, 2.5, rng)
    finish(start(argv(run)))
    ref_dir = reference.wait("train")
    assert kills >= 1, "no kill landed before the run finished: widen the window"
    assert status(run) == "complete"
    safetensors_equal(run / "model" / "model.safetensors", ref_dir / "model" / "model.safetensors")
    safetensors_equal(run / "heads.safetensors", ref_dir / "heads.safetensors")
    import pandas as pd

    timing = tuple(c for c in pd.read_parquet(ref_dir / "train_log.parquet").columns
                   if c.endswith("_s") or "time" in c or "second" in c)  # wall-clock, not results
    tables_equal(run / "train_log.parquet", ref_dir / "train_log.parquet", drop=timing)
    scan_complete_files(run)


# --------------------------------------------------------------------------- probe
@pytest.mark.parametrize("seed", SEEDS)
def test_kill_probe_rerun_identical(seed, inputs, reference, tmp_path):
    def argv(out):
        return ["probe", "-m", inputs["model"], "-s", inputs["heldout"], "-o", out, "-r", "quick", "--threads", "1"]

    run = tmp_path / "run"
    reference("probe", argv)
    rng = random.Random(20 + seed)
    kills = 0
    # the probe is a staged run (gaspprobe.runs): it writes into a hidden .run.tmp-* folder beside
    # --out and swaps it in whole at the end; kill while that folder exists
    kills += kill_until_interrupted(argv(run), run, lambda: any(tmp_path.glob(".run.tmp-*")), 1.0, rng)
    assert not run.exists()  # a killed staged run leaves nothing visible (no half run)
    finish(start(argv(run)))
    ref_dir = reference.wait("probe")
    assert kills >= 1
    assert status(run) == "complete"
    tables_equal(run / "probe.parquet", ref_dir / "probe.parquet")
    sa = json.loads((run / "summary.json").read_text())
    sb = json.loads((ref_dir / "summary.json").read_text())
    for k in ("accuracy", "peak_layer", "peak_accuracy", "layer_mean_accuracy"):
        assert sa[k] == sb[k], k


# --------------------------------------------------------------------------- bench
def _lines(p: Path) -> list[str]:
    return [ln for ln in p.read_text().split("\n")[:-1] if ln.strip()] if p.exists() else []


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_bench_resumes_without_recomputing(seed, inputs, reference, tmp_path):
    import pandas as pd

    n = len(pd.read_parquet(inputs["vsi"] / "test-00000-of-00001.parquet"))
    assert n >= 4

    def argv(out):
        return ["bench", "run", "--model", inputs["model"], "--benchmark", "synthetic_vsi", "--data", inputs["vsi"],
                "--out", out, "--frames", "2", "--device", "cpu", "--threads", "1"]

    run = tmp_path / "run"
    reference("bench", argv)
    rng = random.Random(30 + seed)
    pred = run / "predictions.jsonl"
    kills = 0
    for _ in range(KILLS):
        before = _lines(pred)
        k = len(before) + rng.randint(0, 2)  # kill once k records exist, plus a random slice of time
        killed = kill_at(argv(run), lambda: len(_lines(pred)) >= k, 0.3, rng)
        kills += killed and status(run) != "complete"
        scan_complete_files(run)
        after = _lines(pred)
        assert after[: len(before)] == before, "finished records were rewritten"
        ids = [json.loads(ln)["id"] for ln in after]
        assert len(ids) == len(set(ids)), "a finished sample was recomputed"
    finished_before_last = _lines(pred)
    finish(start(argv(run)))
    ref_dir = reference.wait("bench")
    assert kills >= 1
    final = _lines(pred)
    assert final[: len(finished_before_last)] == finished_before_last
    recs = [json.loads(ln) for ln in final]
    assert len(recs) == n and len({r["id"] for r in recs}) == n  # each sample exactly once
    ref_recs = {r["id"]: r for r in map(json.loads, _lines(ref_dir / "predictions.jsonl"))}
    for r in recs:
        q = ref_recs[r["id"]]
        for key in ("raw", "parsed", "score", "target", "prompt", "frame_indices"):
            assert r[key] == q[key], (r["id"], key)
    tables_equal(run / "scores.parquet", ref_dir / "scores.parquet")


# --------------------------------------------------------------------------- loop
def _loop_argv(inputs, out):
    return ["loop", "--out", out, "--model", inputs["model"], "--scenes", inputs["scenes"],
            "--heldout", inputs["heldout"], "--train-config", inputs["cfg"], "--bench-limit", "3", "--quick"]


def test_kill_loop_resumes_to_identical_results(inputs, tmp_path):
    """Kills aimed at different stages (with random jitter): base probe, after training, mid-bench.

    (A kill inside the training stage is ``test_kill_loop_inside_training``: a known bug.)
    """
    ref_dir, run = tmp_path / "ref", tmp_path / "run"
    ref = start(_loop_argv(inputs, ref_dir))
    rng = random.Random(40)
    vsi_base = run / "bench" / "synthetic_vsi" / "base" / "predictions.jsonl"
    triggers = [(lambda: (run / "probe" / "base" / "manifest.json").exists(), 0.3),
                (lambda: (run / "probe" / "gasp" / "manifest.json").exists(), 1.0),
                (lambda: len(_lines(vsi_base)) >= 1, 0.2)]
    kills = 0
    for ready, window in triggers:
        killed = kill_at(_loop_argv(inputs, run), ready, window, rng)
        kills += killed and json.loads((run / "manifest.json").read_text()).get("status") != "complete"
        scan_complete_files(run)
    finish(start(_loop_argv(inputs, run)), timeout=600)
    finish(ref, timeout=600)
    assert kills >= 2
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    for sub in ("probe/base", "probe/gasp"):
        # the model column holds the model's path, which differs between the two loop folders
        tables_equal(run / sub / "probe.parquet", ref_dir / sub / "probe.parquet", drop=("model",))
    safetensors_equal(run / "train/gasp/model/model.safetensors", ref_dir / "train/gasp/model/model.safetensors")
    safetensors_equal(run / "train/gasp/heads.safetensors", ref_dir / "train/gasp/heads.safetensors")
    for b in ("synthetic_vsi", "synthetic_allangles"):
        for label in ("base", "gasp"):
            a = [json.loads(x) for x in _lines(run / "bench" / b / label / "predictions.jsonl")]
            r = {x["id"]: x for x in map(json.loads, _lines(ref_dir / "bench" / b / label / "predictions.jsonl"))}
            assert sorted(x["id"] for x in a) == sorted(r) and len(a) == len(r), (b, label)
            for x in a:
                assert (x["raw"], x["score"]) == (r[x["id"]]["raw"], r[x["id"]]["score"]), (b, label, x["id"])
    assert (run / "report" / "report.html").is_file()
    scan_complete_files(run)


def test_kill_loop_inside_training(inputs, tmp_path):
    run = tmp_path / "run"
    ckpts = run / "train" / "gasp" / "checkpoints"
    killed = kill_at(_loop_argv(inputs, run), lambda: ckpts.is_dir() and any(ckpts.glob("step-*")), 0.0,
                     random.Random(41))
    assert killed
    scan_complete_files(run)
    finish(start(_loop_argv(inputs, run)), timeout=600)
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


# --------------------------------------------------------------------------- writes bypassing gaspprobe.io
def test_result_writes_go_through_atomic_helpers():
    """Static sweep: no plain ``open(..., 'w')``/``to_parquet(path)``/``savefig(path)``/``save_file(path)``/
    ``torch.save``/``write_text`` in the package outside ``gaspprobe/io.py``, except the audited sites
    listed here with why they are safe (each writes into a hidden temp file/folder that is renamed
    into place only when complete)."""
    import re

    pkg = Path(__file__).resolve().parents[1] / "gaspprobe"
    pat = re.compile(r"open\([^)]*['\"](w|wb|a|ab|x)['\"]|\.to_parquet\(|\.savefig\(|save_file\(|torch\.save\("
                     r"|\.write_text\(|\.write_bytes\(|save_pretrained\(|\.to_csv\([^)]|np\.save|json\.dump\("
                     r"|shutil\.copy|\)\.save\((?!buf)")
    audited = {
        # (file, code fragment): why it is atomic
        ("scenes/scannet.py", "open(p, \"wb\")"): "files of a hidden .<name>.tmp-* folder renamed at the end",
        ("training/checkpoints.py", "save_file(tensors, str(tmp / STATE_FILE)"): "hidden .step-N.tmp folder, os.replace",
        ("training/outputs.py", "merged.save_pretrained(tmp)"): "hidden .model.tmp folder, os.replace",
        ("training/outputs.py", "adapter.processor.save_pretrained(tmp)"): "same hidden .model.tmp folder",
        ("training/heads.py", "save_file(tensors, str(tmp)"): "inside io.atomic_path",
        ("benchmarking/synthetic.py", "df.to_parquet(tmp"): "inside io.atomic_path",
        ("benchmarking/synthetic.py", "blink_features()).to_parquet(str(tmp))"): "inside io.atomic_path",
        ("models/tiny.py", "model.save_pretrained(run.dir)"): "run kernel's staged temp folder, swapped in whole",
        ("models/tiny.py", "processor.save_pretrained(run.dir)"): "same staged temp folder",
        ("tables.py", "io.atomic_write_text(path.with_suffix(\".csv\"), df.to_csv("): "io.atomic_write_text",
        ("probing/plots.py", "fig.savefig(tmp"): "inside io.atomic_path",
        ("reporting/plots.py", "fig.savefig(tmp"): "inside io.atomic_path",
        ("training/outputs.py", "fig.savefig(tmp"): "inside io.atomic_path",
        ("scenes/show.py", "fig.savefig(tmp"): "inside io.atomic_path",
        ("training/outputs.py", "shutil.copy2(f, tmp / f.name)"): "into the hidden .model.tmp folder",
        # Test writers of scenes/formats lay a dataset out in ITS layout for the round-trip tests;
        # they never write a gaspprobe result (``scenes convert`` writes through save_scene).
        ("scenes/formats/base.py", "path.write_bytes(data)"): "test writer (dataset layout), not a result",
        ("scenes/formats/co3dv2.py", "json.dump(old"): "test writer (dataset layout), not a result",
        ("scenes/formats/co3dv2.py", "json.dump(olds"): "test writer (dataset layout), not a result",
        ("scenes/formats/colmap.py", ".write_bytes("): "test writer (dataset layout), not a result",
        ("scenes/formats/colmap.py", ".write_text("): "test writer (dataset layout), not a result",
        ("scenes/formats/dl3dv.py", "np.save(dp"): "test writer (dataset layout), not a result",
        ("scenes/formats/tartanair.py", "np.save(dp"): "test writer (dataset layout), not a result",
        ("benchmarking/synthetic.py", ".save(tmp, format=\"PNG\")"): "inside io.atomic_path",
    }
    offenders = []
    for f in sorted(pkg.rglob("*.py")):
        rel = f.relative_to(pkg).as_posix()
        if rel == "io.py":
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if pat.search(line) and not any(rel == a and frag in line for a, frag in audited):
                offenders.append(f"{rel}:{i}: {line.strip()}")
    assert not offenders, "writes bypassing gaspprobe.io:\n" + "\n".join(offenders)


# --------------------------------------------------------------------------- scenes make
def test_kill_scenes_make_resumes_to_identical_bytes(tmp_path):
    """`scenes make` killed mid-way: no half scene is visible, the rerun ends byte-identical."""
    def argv(out):
        return ["scenes", "make", out, "--n-scenes", "5", "--frames", "3", "--size", "96", "--threads", "1"]

    ref_dir, run = tmp_path / "ref", tmp_path / "run"
    ref = start(argv(ref_dir))
    rng = random.Random(50)
    kills = 0
    for _ in range(2):
        kills += kill_until_interrupted(argv(run), run, lambda: run.is_dir() and any(run.glob("scene*")), 0.6, rng)
        from gaspprobe.scenes import load_scene

        for d in run.glob("scene*"):  # every visible scene folder is complete and loads
            assert load_scene(d).num_frames == 3
        if any(run.glob("scene*")):  # the reader skips hidden half-written .scene.tmp-* folders
            from gaspprobe.scenes import load_scenes

            assert len(load_scenes(run)) == len(list(run.glob("scene*")))
    finish(start(argv(run)))
    finish(ref)
    assert kills >= 1
    def files(root):
        return sorted(p.relative_to(root) for p in root.rglob("*")
                      if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts))
    assert files(run) == files(ref_dir)
    for rel in files(run):
        if rel.name == "manifest.json":
            continue  # holds a creation time
        assert (run / rel).read_bytes() == (ref_dir / rel).read_bytes(), rel


# --------------------------------------------------------------------------- bench synthesize
def test_kill_bench_synthesize_rerun_identical_questions(tmp_path):
    """Killed while writing videos: every visible mp4 decodes, the question file is absent or whole;
    the rerun writes the same questions as an uninterrupted run."""
    from gaspprobe.scenes import make_scenes

    scenes = tmp_path / "scenes"  # enough scenes that writing their videos takes a moment
    make_scenes(scenes, n_scenes=8, frames=8, size=64, seed=3)

    def argv(out):
        return ["bench", "synthesize", "--scenes", scenes, "--out", out, "--format", "vsibench"]

    ref_dir, run = tmp_path / "ref", tmp_path / "run"
    ref = start(argv(ref_dir))
    rng = random.Random(60)
    pq = run / "test-00000-of-00001.parquet"
    interrupted = False
    for _ in range(8):  # the kill must land while videos exist and the table does not: retry on a loaded box
        # a staged run: the videos go into a hidden .run.tmp-* folder that is swapped in whole
        killed = kill_at(argv(run), lambda: any(p.is_dir() and any(p.rglob("*.mp4"))
                                                for p in tmp_path.glob(".run.tmp-*")), 0.3, rng)
        if run.exists():
            scan_complete_files(run)  # decodes every visible mp4, reads the parquet if present
        if killed and not pq.exists():
            interrupted = True
            break
        import shutil

        shutil.rmtree(run, ignore_errors=True)
    finish(start(argv(run)))
    finish(ref)
    assert interrupted
    tables_equal(pq, ref_dir / "test-00000-of-00001.parquet")
    def visible(root):
        return sorted(p.name for p in root.rglob("*.mp4") if not p.name.startswith("."))
    assert visible(run) == visible(ref_dir)  # (a killed writer's hidden temp file may remain; readers skip it)
    scan_complete_files(run)
