"""End-to-end: ``gaspprobe probe`` on generated scenes on disk, through the console-script entry
point ``gaspprobe.cli.main`` (in-process: a subprocess per case would cost seconds of imports),
plus one real subprocess run."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from gaspprobe import io

_CAP = {}


@pytest.fixture(autouse=True)
def _capture(capsys):
    _CAP["c"] = capsys
    yield


def _cli(*args):
    from gaspprobe.cli import main

    cap = _CAP["c"]
    cap.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    o = cap.readouterr()
    return SimpleNamespace(returncode=code, stdout=o.out, stderr=o.err)


def test_console_script_subprocess(scene_dir, tmp_path):
    code = "import sys; from gaspprobe.cli import main; main(sys.argv[1:])"
    r = subprocess.run([sys.executable, "-c", code, "probe", "--model", "oracle:random:4x4", "--scenes",
                        str(scene_dir), "--out", str(tmp_path / "r"), "--recipe", "quick", "--gaps", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert io.read_manifest(tmp_path / "r", kind="probe")["status"] == "complete"


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    from gaspprobe.scenes import make_scenes

    d = tmp_path_factory.mktemp("scenes")
    make_scenes(d, n_scenes=2, frames=4, size=96, seed=0)
    return d


def test_cli_probe_oracle_writes_a_complete_run_and_reruns_cached(scene_dir, tmp_path):
    out = tmp_path / "run"
    r = _cli("probe", "--model", "oracle:xyz:8x8", "--scenes", scene_dir, "--out", out, "--recipe", "quick",
             "--gaps", "1,2", "--modes", "hidden,attention", "--no-depth-probe")
    assert r.returncode == 0, r.stderr
    assert "peak" in r.stdout and "llm.0" in r.stdout
    m = io.read_manifest(out, kind="probe")
    assert m["status"] == "complete" and m["model"] == "oracle:xyz:8x8"
    assert m["config"]["gaps"] == [1, 2] and m["config"]["depth_probe"] is False
    assert m["config"]["frames_per_clip"] == 8  # from the quick recipe
    s = json.loads((out / "summary.json").read_text())
    assert s["attention"]["peak_accuracy"] >= 0.99 and s["n_scenes"] == 2
    for f in ("probe.parquet", "probe.csv", "accuracy_vs_layer.png", "accuracy_vs_gap.png"):
        assert (out / f).stat().st_size > 0
    again = _cli("probe", "--model", "oracle:xyz:8x8", "--scenes", scene_dir, "--out", out, "--recipe", "quick",
                 "--gaps", "1,2", "--modes", "hidden,attention", "--no-depth-probe")
    assert again.returncode == 0 and "not recomputed" in again.stdout
    other = _cli("probe", "--model", "oracle:random:8x8", "--scenes", scene_dir, "--out", out, "--recipe", "quick")
    assert other.returncode == 2 and "different config.depth_probe, config.gaps, config.modes, model" in other.stderr


@pytest.mark.parametrize("args, msg", [
    (["--gaps", "1,x"], "--gaps: expected comma-separated integers"),
    (["--modes", "hidden,depth"], "modes: unknown feature source 'depth'; known: hidden, attention, q, k, v"),
    (["--tolerances", "0,-1"], "tolerances: expected integers >= 0"),
    (["--headline-r", "3"], "headline_r: 3 is not one of the tolerances"),
    (["--patch-unit", "pixel"], "patch_unit: expected 'llm_token' or 'vision_patch'"),
    (["--gaps", "1,2,40", "--recipe", "paper"], "gaps: Δt 40 needs clips of 41 frames, frames_per_clip is 32"),
    (["--recipe", "paper"], "gaps: Δt up to 24 needs clips of 25 frames; scene scene0000_00 gives 4"),
    (["--recipe", "nope"], "unknown recipe 'nope'"),
    (["--model", "oracle:xyz:axb"], "bad oracle grid"),
])
def test_cli_bad_input_is_one_line_exit_2(scene_dir, tmp_path, args, msg):
    base = {"--model": "oracle:xyz", "--scenes": str(scene_dir), "--out": str(tmp_path / "r")}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    r = _cli("probe", *[x for kv in base.items() for x in kv])
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and msg in lines[0], r.stderr


def test_cli_bad_recipe_file_and_missing_scenes(scene_dir, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("gaps = [1]\npairs_per_gapp = 3\n")
    r = _cli("probe", "--model", "oracle:xyz", "--scenes", scene_dir, "--out", tmp_path / "r", "--recipe", bad)
    assert r.returncode == 2 and "bad.toml: unknown key 'pairs_per_gapp'" in r.stderr
    r = _cli("probe", "--model", "oracle:xyz", "--scenes", tmp_path / "nothing", "--out", tmp_path / "r")
    assert r.returncode == 2 and "nothing" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_several_models_make_one_comparison_run(scene_dir, tmp_path):
    out = tmp_path / "cmp"
    r = _cli("probe", "--model", "oracle:xyz:8x8", "--model", "oracle:random:8x8", "--label", "upper",
             "--label", "floor", "--scenes", scene_dir, "--out", out, "--recipe", "quick", "--gaps", "1,2")
    assert r.returncode == 0, r.stderr
    m = io.read_manifest(out, kind="probe-set")
    assert m["status"] == "complete" and m["runs"] == ["upper", "floor"] and m["labels"] == ["upper", "floor"]
    assert io.read_manifest(out / "upper", kind="probe")["model_label"] == "upper"
    s = json.loads((out / "upper" / "summary.json").read_text())
    assert s["model"] == "oracle:xyz:8x8" and s["peak_accuracy"] > 0.8
    import pandas as pd

    t = pd.read_parquet(out / "comparison.parquet")
    assert set(t.model) == {"oracle:xyz:8x8", "oracle:random:8x8"}
    assert (out / "paper_figure.png").is_file() and (out / "paper_figure.pdf").is_file()
    again = _cli("probe", "--model", "oracle:xyz:8x8", "--model", "oracle:random:8x8", "--label", "upper",
                 "--label", "floor", "--scenes", scene_dir, "--out", out, "--recipe", "quick", "--gaps", "1,2")
    assert again.returncode == 0, again.stderr
    bad = _cli("probe", "--model", "oracle:xyz", "--model", "oracle:random", "--label", "x",
               "--scenes", scene_dir, "--out", tmp_path / "b")
    assert bad.returncode == 2 and "label: 1 labels for 2 models" in bad.stderr


def test_cli_paper_recipe_on_video_scenes(tmp_path):
    """The paper recipe end to end: every Δt 1..24 measured in one clip of video-like scenes,
    PCK@2 headline with its chance, normalized PCK, robustness and PCK_24/PCK_1."""
    from gaspprobe.scenes import make_scenes

    scenes = tmp_path / "video"
    make_scenes(scenes, n_scenes=1, frames=26, size=64, seed=5, camera="video", fps=30.0)
    out = tmp_path / "paper"
    r = _cli("probe", "--model", "oracle:xyz:8x8", "--scenes", scenes, "--out", out, "--recipe", "paper",
             "--modes", "hidden", "--pairs-per-gap", "1", "--label", "upper")
    assert r.returncode == 0, r.stderr
    assert "PCK@2 llm_token" in r.stdout and "PCK_24/PCK_1" in r.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["headline_r"] == 2 and s["patch_unit"] == "llm_token" and s["fps"] == 30.0
    assert sorted(int(g) for g in s["n_by_gap"]) == list(range(1, 25))
    assert s["peak_accuracy"] > 0.95 and s["headline_chance"] == s["chance_r2"] < 0.4
    assert s["robustness"] > 0.9 and s["robustness_max_gap"] == 24 and s["robustness_at_max_gap"] > 0.9
    assert sorted(int(g) for g in s["normalized_by_layer"]["llm.0"]) == list(range(1, 25))
    assert io.read_manifest(out, kind="probe")["model_label"] == "upper"
