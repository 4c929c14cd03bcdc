"""Reliability, part 1: bad input to every command is ONE line naming the file or field, exit 2.

Each case builds a broken input (scene folder, model folder, benchmark file, recipe/config) from a
known-good one, runs the real CLI entry point (``gaspprobe.cli.main``, the console script's target)
and checks: exit status 2, the error is a single ``error: ...`` line on stderr that names the file
or field, and nothing looks like a traceback. Most cases run the entry point in-process (same code
path, no interpreter start-up: ~3 s each on this box); ``test_subprocess_*`` run a representative
subset through a real child process, which also checks that nothing else (warnings, progress bars,
library logging) leaks a second line onto stderr.

Expectations are written here from the spec (issue 10, docs/scenes.md, docs/benchmarks.md), not
read back from the code under test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


# --------------------------------------------------------------------------- helpers
def run_inproc(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``gaspprobe ARGV`` through the console-script entry point in this process."""
    from gaspprobe.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


CHILD = [sys.executable, "-c", "import sys; from gaspprobe.cli import main; main(sys.argv[1:])"]


def run_child(argv: list[str], cwd: Path | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """Run ``gaspprobe ARGV`` in a fresh interpreter (``python -m gaspprobe.cli`` has no __main__)."""
    import os

    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    r = subprocess.run(CHILD + [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, env=env,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


_PROGRESS = re.compile(r"^(Loading weights|Writing model shards|Fetching \d+ files).*(it/s|s/it)\]\s*$")


def assert_bad_row_recorded(code: int, err: str, run: Path, needles) -> None:
    """A bad benchmark row: exit 0, one stderr line for it naming every needle, the sample counted as
    failed in summary.json, the other samples scored (the oracle gets them all right)."""
    assert code == 0, f"exit {code}, stderr:\n{err}"
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("failed sample")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_failed"] + summary.get("n_invalid", 0) >= 1
    scores = pd_read(run / "scores.parquet")
    assert len(scores) >= 1 and (scores["score"] == 1).all()


def pd_read(path: Path):
    import pandas as pd

    return pd.read_parquet(path)


def assert_one_line_error(code: int, err: str, *needles: str, allow_progress: bool = True) -> str:
    """Exit 2, exactly one non-empty stderr line starting with 'error:' and holding every needle.

    ``allow_progress``: transformers' own weight-loading progress bars (drawn while a model loads
    successfully, before a check that needs the model fails) are not part of the error and are
    skipped; tests of checks that need no model pass False.
    """
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if allow_progress:
        lines = [ln for ln in lines if not _PROGRESS.match(ln.strip())]
    assert code == 2, f"exit {code}, stderr:\n{err}"
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected ONE stderr line, got {len(lines)}:\n{err}"
    line = lines[0]
    assert line.startswith("error: "), line
    for n in needles:
        assert str(n) in line, f"{n!r} not named in: {line}"
    return line


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def good_scene(tmp_path_factory) -> Path:
    """One small procedural scene (3 frames, 64x64) on disk, ScanNet layout."""
    from gaspprobe.scenes import generate_scene, save_scene

    root = tmp_path_factory.mktemp("good")
    save_scene(generate_scene(seed=3, frames=3, size=64, name="scene0000_00"), root / "scene0000_00")
    return root / "scene0000_00"


@pytest.fixture()
def scene(good_scene, tmp_path) -> Path:
    """A fresh copy of the good scene to break."""
    dst = tmp_path / "scenes" / "scene0000_00"
    shutil.copytree(good_scene, dst)
    return dst


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> None:
    from PIL import Image

    Image.fromarray(arr, mode=mode).save(path, format="PNG") if mode else Image.fromarray(arr).save(path)


# --------------------------------------------------------------------------- scenes
def _break_intrinsic_missing(s: Path) -> str:
    (s / "intrinsic" / "intrinsic_color.txt").unlink()
    return "intrinsic_color.txt"


def _break_intrinsic_garbled(s: Path) -> str:
    (s / "intrinsic" / "intrinsic_color.txt").write_text("fx fy cx cy\nnot numbers at all\n")
    return "intrinsic_color.txt"


def _break_intrinsic_binary(s: Path) -> str:
    (s / "intrinsic" / "intrinsic_color.txt").write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    return "intrinsic_color.txt"


def _break_pose_3x4(s: Path) -> str:
    (s / "pose" / "1.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n")
    return "1.txt"


def _break_pose_3x3(s: Path) -> str:
    (s / "pose" / "2.txt").write_text("1 0 0\n0 1 0\n0 0 1\n")
    return "2.txt"


def _break_all_poses_nan(s: Path) -> str:
    for p in (s / "pose").glob("*.txt"):
        p.write_text("nan nan nan nan\n" * 4)
    return "pose"


def _break_depth_8bit(s: Path) -> str:
    _png(s / "depth" / "1.png", np.full((64, 64), 200, np.uint8))
    return "1.png"


def _break_depth_truncated(s: Path) -> str:
    p = s / "depth" / "0.png"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return "0.png"


def _break_depth_missing_frame(s: Path) -> str:
    (s / "depth" / "2.png").unlink()
    return "depth"


def _break_pose_extra_frame(s: Path) -> str:
    shutil.copy(s / "pose" / "0.txt", s / "pose" / "7.txt")
    return "pose"


def _break_color_missing_frame(s: Path) -> str:
    (s / "color" / "1.png").unlink()
    return "depth"  # depth/ (and pose/) now have a frame colour lacks: the message names depth/


def _break_color_truncated(s: Path) -> str:
    p = s / "color" / "2.png"
    p.write_bytes(p.read_bytes()[:40])
    return "2.png"


def _break_empty(s: Path) -> str:
    shutil.rmtree(s)
    s.mkdir()
    return s.name


def _break_no_pose_dir(s: Path) -> str:
    shutil.rmtree(s / "pose")
    return "pose"


def _break_objects_json(s: Path) -> str:
    (s / "objects.json").write_text("{not json")
    return "objects.json"


def _break_pose_words(s: Path) -> str:
    (s / "pose" / "0.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 one 0\n0 0 0 1\n")
    return "0.txt"


def _break_intrinsic_zero_focal(s: Path) -> str:
    (s / "intrinsic" / "intrinsic_color.txt").write_text("0 0 31.5 0\n0 0 31.5 0\n0 0 1 0\n0 0 0 1\n")
    return "intrinsic_color.txt"


def _break_color_size(s: Path) -> str:
    from PIL import Image

    with Image.open(s / "color" / "2.png") as im:
        im.resize((48, 48)).save(s / "color" / "2.png")
    return "2.png"


SCENE_CASES = {
    "pose-words": _break_pose_words,
    "intrinsic-zero-focal": _break_intrinsic_zero_focal,
    "color-size-differs": _break_color_size,
    "intrinsic-missing": _break_intrinsic_missing,
    "intrinsic-garbled": _break_intrinsic_garbled,
    "intrinsic-binary": _break_intrinsic_binary,
    "pose-3x4": _break_pose_3x4,
    "pose-3x3": _break_pose_3x3,
    "pose-all-nan": _break_all_poses_nan,
    "depth-8bit": _break_depth_8bit,
    "depth-truncated": _break_depth_truncated,
    "depth-missing-frame": _break_depth_missing_frame,
    "pose-extra-frame": _break_pose_extra_frame,
    "color-missing-frame": _break_color_missing_frame,
    "color-truncated": _break_color_truncated,
    "empty-folder": _break_empty,
    "no-pose-folder": _break_no_pose_dir,
    "objects-json": _break_objects_json,
}


@pytest.mark.parametrize("case", list(SCENE_CASES))
def test_bad_scene_probe_one_line(case, scene, tmp_path, capsys):
    """`gaspprobe probe` on a broken scene: one line naming the broken file/folder, exit 2."""
    needle = SCENE_CASES[case](scene)
    # an empty sub-folder of a folder of scenes is not a scene (skipped): point at the folder itself
    target = scene if case == "empty-folder" else scene.parent
    code, _, err = run_inproc(["probe", "-m", "oracle:random", "-s", target, "-o", tmp_path / "run",
                               "-r", "quick"], capsys)
    assert_one_line_error(code, err, needle)
    # nothing was written that could pass for a result
    assert not (tmp_path / "run" / "probe.parquet").exists()


@pytest.mark.parametrize("case", ["intrinsic-garbled", "pose-3x4", "depth-8bit", "depth-missing-frame",
                                  "pose-all-nan"])
def test_bad_scene_check_names_file(case, scene, capsys):
    """`gaspprobe scenes check` lists the problem (naming the file) and exits 2."""
    needle = SCENE_CASES[case](scene)
    code, _, err = run_inproc(["scenes", "check", scene.parent], capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert any(needle in ln for ln in err.splitlines()), err


def test_bad_scene_train_one_line(scene, tmp_path, capsys, tiny_model_dir):
    """`gaspprobe train` reads scenes through the same reader: same one-line error."""
    needle = _break_pose_3x4(scene)
    code, _, err = run_inproc(["train", "-m", tiny_model_dir, "-s", scene.parent, "-o", tmp_path / "t",
                               "--steps", "1", "--no-progress"], capsys)
    assert_one_line_error(code, err, needle)


def test_nan_pose_frame_skipped_with_one_warning(scene, tmp_path):
    """One inf/nan pose: that frame is skipped with ONE SceneWarning; the others load."""
    from gaspprobe.scenes import SceneWarning, load_scene

    (scene / "pose" / "1.txt").write_text("1 0 0 nan\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = load_scene(scene)
    ours = [w for w in caught if issubclass(w.category, SceneWarning)]
    assert len(ours) == 1 and "skipped 1 frame" in str(ours[0].message)
    assert s.frame_ids == [0, 2] and s.num_frames == 2
    assert bool(s.cam_to_world.isfinite().all())
    (scene / "pose" / "2.txt").write_text("inf 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = load_scene(scene)
    assert len([w for w in caught if issubclass(w.category, SceneWarning)]) == 1
    assert s.frame_ids == [0]


def test_missing_scenes_folder(tmp_path, capsys):
    code, _, err = run_inproc(["probe", "-m", "oracle:random", "-s", tmp_path / "nope", "-o", tmp_path / "r",
                               "-r", "quick"], capsys)
    assert_one_line_error(code, err, "nope")


# --------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from gaspprobe.models import build_tiny

    out = tmp_path_factory.mktemp("tinyvlm") / "qwen"
    build_tiny("qwen2_5_vl", out, seed=0)
    return out


@pytest.fixture(scope="module")
def text_only_dir(tmp_path_factory) -> Path:
    """A tiny text-only causal LM (Qwen2) saved with save_pretrained: config + weights, no vision."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = tmp_path_factory.mktemp("textonly") / "qwen2-text"
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def unsupported_vlm_dir(tmp_path_factory) -> Path:
    """A real transformers VLM architecture gaspprobe has no adapter for (Llama 3.2 Vision): config only."""
    from transformers import MllamaConfig

    out = tmp_path_factory.mktemp("unsupported") / "mllama"
    MllamaConfig().save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def scenes_root(good_scene) -> Path:
    return good_scene.parent


def _model_cmds(model: Path, scenes: Path, out: Path, bench_data: Path) -> dict[str, list]:
    return {
        "probe": ["probe", "-m", model, "-s", scenes, "-o", out / "p", "-r", "quick"],
        "train": ["train", "-m", model, "-s", scenes, "-o", out / "t", "--steps", "1", "--no-progress"],
        "bench": ["bench", "run", "--model", model, "--benchmark", "synthetic_vsi", "--data", bench_data,
                  "--out", out / "b", "--limit", "1", "--device", "cpu"],
        "inspect": ["model", "inspect", model],
    }


@pytest.fixture(scope="module")
def vsi_data(tmp_path_factory, good_scene) -> Path:
    """A synthetic VSI-Bench folder (parquet + videos) in the official schema, from the good scene."""
    from gaspprobe.benchmarking.synthetic import synthesize

    out = tmp_path_factory.mktemp("vsi") / "data"
    synthesize(good_scene.parent, out, format="vsibench")
    return out


@pytest.mark.parametrize("command", ["probe", "train", "bench", "inspect"])
def test_model_path_missing(command, tmp_path, scenes_root, vsi_data, capsys):
    missing = tmp_path / "no_such_model"
    argv = _model_cmds(missing, scenes_root, tmp_path, vsi_data)[command]
    code, _, err = run_inproc(argv, capsys)
    assert_one_line_error(code, err, "no_such_model")


@pytest.mark.parametrize("command", ["probe", "train", "bench", "inspect"])
def test_text_only_model(command, tmp_path, scenes_root, vsi_data, text_only_dir, capsys):
    argv = _model_cmds(text_only_dir, scenes_root, tmp_path, vsi_data)[command]
    code, _, err = run_inproc(argv, capsys)
    line = assert_one_line_error(code, err, "qwen2-text")
    assert "text-only" in line


@pytest.mark.parametrize("command", ["probe", "bench", "inspect"])
def test_unsupported_architecture(command, tmp_path, scenes_root, vsi_data, unsupported_vlm_dir, capsys):
    argv = _model_cmds(unsupported_vlm_dir, scenes_root, tmp_path, vsi_data)[command]
    code, _, err = run_inproc(argv, capsys)
    line = assert_one_line_error(code, err, "mllama")
    assert "qwen2_5_vl" in line  # the message lists what is supported


def test_model_folder_garbled_config(tmp_path, scenes_root, capsys):
    d = tmp_path / "garbled"
    d.mkdir()
    (d / "config.json").write_text("{ this is not json")
    code, _, err = run_inproc(["probe", "-m", d, "-s", scenes_root, "-o", tmp_path / "p", "-r", "quick"], capsys)
    assert_one_line_error(code, err, "garbled")


def test_model_folder_without_config(tmp_path, scenes_root, capsys):
    d = tmp_path / "emptymodel"
    d.mkdir()
    code, _, err = run_inproc(["probe", "-m", d, "-s", scenes_root, "-o", tmp_path / "p", "-r", "quick"], capsys)
    assert_one_line_error(code, err, "emptymodel", "config.json")


# --------------------------------------------------------------------------- benchmarks
def _vsi_copy(vsi_data: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "vsi"
    shutil.copytree(vsi_data, dst)
    return dst


def _bench(data: Path, out: Path, *extra) -> list:
    return ["bench", "run", "--model", "oracle:answers", "--benchmark", "synthetic_vsi", "--data", data,
            "--out", out, "--frames", "2", *extra]


def test_bench_missing_column(vsi_data, tmp_path, capsys):
    import pandas as pd

    d = _vsi_copy(vsi_data, tmp_path)
    pq = d / "test-00000-of-00001.parquet"
    pd.read_parquet(pq).drop(columns=["question_type"]).to_parquet(pq)
    code, _, err = run_inproc(_bench(d, tmp_path / "b"), capsys)
    assert_one_line_error(code, err, "question_type")


def test_bench_unknown_question_type(vsi_data, tmp_path, capsys):
    import pandas as pd

    d = _vsi_copy(vsi_data, tmp_path)
    pq = d / "test-00000-of-00001.parquet"
    df = pd.read_parquet(pq)
    df.loc[0, "question_type"] = "object_smell_estimation"
    df.to_parquet(pq)
    code, _, err = run_inproc(_bench(d, tmp_path / "b"), capsys)
    assert_one_line_error(code, err, "object_smell_estimation")


def test_bench_garbled_parquet(vsi_data, tmp_path, capsys):
    d = _vsi_copy(vsi_data, tmp_path)
    (d / "test-00000-of-00001.parquet").write_bytes(b"PAR1 this is not a parquet file")
    code, _, err = run_inproc(_bench(d, tmp_path / "b"), capsys)
    assert_one_line_error(code, err, "test-00000-of-00001.parquet")


def test_bench_missing_video_is_recorded_and_run_continues(vsi_data, tiny_model_dir, tmp_path, capsys):
    """A sample whose video is missing is a recorded failure; every other sample still runs.

    A real (tiny) model: ``oracle:answers`` never opens the video.
    """
    import pandas as pd

    from gaspprobe.io import read_jsonl

    d = _vsi_copy(vsi_data, tmp_path)
    df = pd.read_parquet(d / "test-00000-of-00001.parquet").head(3)
    df.loc[1, "scene_name"] = "scene_without_video"  # the middle question's video does not exist
    df.to_parquet(d / "test-00000-of-00001.parquet")
    out = tmp_path / "b"
    code, _, err = run_inproc(["bench", "run", "--model", tiny_model_dir, "--benchmark", "synthetic_vsi",
                               "--data", d, "--out", out, "--frames", "2", "--device", "cpu"], capsys)
    assert code == 0, err
    recs = read_jsonl(out / "predictions.jsonl")
    assert [r["id"] for r in recs] == [str(i) for i in df["id"]]
    bad = recs[1]
    assert bad["failed"] and "scene_without_video" in bad["failed"] and bad["score"] == 0.0
    assert bad["raw"] is None
    assert not recs[0]["failed"] and not recs[2]["failed"]
    assert isinstance(recs[0]["raw"], str) and isinstance(recs[2]["raw"], str)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_failed"] == 1, summary
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete"


def test_allangles_missing_image_is_recorded(tmp_path, scenes_root, tiny_model_dir, capsys):
    from gaspprobe.benchmarking.synthetic import synthesize
    from gaspprobe.io import read_jsonl

    data = tmp_path / "aa"
    synthesize(scenes_root, data, format="allangles")
    img = sorted(p for p in data.rglob("*.png"))[0]
    img.unlink()
    qfile = next(data.glob("*.json"))
    n = len(json.loads(qfile.read_text()))
    out = tmp_path / "b"
    code, _, err = run_inproc(["bench", "run", "--model", tiny_model_dir, "--benchmark", "synthetic_allangles",
                               "--data", qfile, "--out", out, "--device", "cpu"], capsys)
    assert code == 0, err
    recs = read_jsonl(out / "predictions.jsonl")
    assert len(recs) == n
    failed = [r for r in recs if r["failed"]]
    assert failed and all(img.name in r["failed"] and r["score"] == 0.0 for r in failed)
    assert len(failed) < n  # the questions that do not need the missing view still ran
    assert all(isinstance(r["raw"], str) for r in recs if not r["failed"])


def _card(tmp_path: Path, edit) -> Path:
    import yaml

    from gaspprobe.benchmarking.card import cards_dir

    data = yaml.safe_load((cards_dir() / "synthetic_vsi.yaml").read_text())
    edit(data)
    p = tmp_path / "mycard.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("edit,needles", [
    (lambda d: d.update(frame_count=8), ["mycard.yaml", "frame_count", "frames"]),  # unknown key, did-you-mean
    (lambda d: d.update(frames="many"), ["mycard.yaml", "frames", "int"]),            # wrong type
    (lambda d: d.update(higher_is_better="yes"), ["mycard.yaml", "higher_is_better", "bool"]),
    (lambda d: d["dataset"].update(splitt="test"), ["mycard.yaml", "splitt"]),        # nested unknown key
    (lambda d: d.update(format="coco"), ["mycard.yaml", "format", "coco"]),
    (lambda d: d["question_types"].update(object_counting="count"), ["mycard.yaml", "question_types"]),
])
def test_bad_benchmark_card(edit, needles, vsi_data, tmp_path, capsys):
    card = _card(tmp_path, edit)
    code, _, err = run_inproc(["bench", "run", "--model", "oracle:answers", "--benchmark", card, "--data", vsi_data,
                               "--out", tmp_path / "b"], capsys)
    assert_one_line_error(code, err, *needles)


def test_unknown_benchmark_name(vsi_data, tmp_path, capsys):
    code, _, err = run_inproc(["bench", "run", "--model", "oracle:answers", "--benchmark", "synthetc_vsi",
                               "--data", vsi_data, "--out", tmp_path / "b"], capsys)
    line = assert_one_line_error(code, err, "synthetc_vsi")
    assert "synthetic_vsi" in line  # did you mean


# --------------------------------------------------------------------------- recipes and configs
@pytest.mark.parametrize("text,needles", [
    ("gapz = [1, 2]\n", ["gapz", "gaps"]),
    ('gaps = "1,2"\n', ["gaps", "list[int]"]),
    ("pairs_per_gap = 2.5\n", ["pairs_per_gap", "int"]),
    ('modes = ["hidden", "telepathy"]\n', ["modes"]),
    ("depth_tol = \n", ["recipe.toml"]),  # TOML syntax error
])
def test_bad_probe_recipe(text, needles, scenes_root, tmp_path, capsys):
    p = tmp_path / "recipe.toml"
    p.write_text(text)
    code, _, err = run_inproc(["probe", "-m", "oracle:random", "-s", scenes_root, "-o", tmp_path / "p", "-r", p],
                              capsys)
    assert_one_line_error(code, err, "recipe.toml", *needles)


def test_unknown_probe_recipe_name(scenes_root, tmp_path, capsys):
    code, _, err = run_inproc(["probe", "-m", "oracle:random", "-s", scenes_root, "-o", tmp_path / "p",
                               "-r", "quik"], capsys)
    assert_one_line_error(code, err, "quik")


@pytest.mark.parametrize("name,text,needles", [
    ("cfg.toml", "stepz = 3\n", ["cfg.toml", "stepz", "steps"]),
    ("cfg.toml", 'steps = "ten"\n', ["cfg.toml", "steps", "int"]),
    ("cfg.toml", "lr = [0.1]\n", ["cfg.toml", "lr", "float"]),
    ("cfg.toml", 'vision = "eyes"\n', ["cfg.toml", "vision"]),
    ("cfg.toml", "steps = 0\n", ["steps"]),
    ("cfg.yaml", "steps: [1, 2\n", ["cfg.yaml"]),          # YAML syntax error
    ("cfg.yaml", "- a\n- b\n", ["cfg.yaml"]),              # not a mapping
    ("cfg.toml", "layer_weights = {\"llm.0\" = \"heavy\"}\n", ["layer_weights"]),
])
def test_bad_train_config(name, text, needles, scenes_root, tiny_model_dir, tmp_path, capsys):
    p = tmp_path / name
    p.write_text(text)
    code, _, err = run_inproc(["train", "-m", tiny_model_dir, "-s", scenes_root, "-o", tmp_path / "t", "-c", p,
                               "--no-progress"], capsys)
    assert_one_line_error(code, err, *needles)


def test_train_config_not_utf8(scenes_root, tiny_model_dir, tmp_path, capsys):
    p = tmp_path / "cfg.toml"
    p.write_bytes(b"steps = 3\n\xff\xfe\xfa garbage\n")
    code, _, err = run_inproc(["train", "-m", tiny_model_dir, "-s", scenes_root, "-o", tmp_path / "t", "-c", p,
                               "--no-progress"], capsys)
    assert_one_line_error(code, err, "cfg.toml")


def test_train_config_missing_file(scenes_root, tiny_model_dir, tmp_path, capsys):
    code, _, err = run_inproc(["train", "-m", tiny_model_dir, "-s", scenes_root, "-o", tmp_path / "t", "-c",
                               tmp_path / "nope.toml", "--no-progress"], capsys)
    assert_one_line_error(code, err, "nope.toml")


def test_loop_bad_train_config_fails_before_any_stage(tmp_path, capsys):
    """A loop whose training config is bad fails at once, naming the key, before making anything."""
    p = tmp_path / "cfg.toml"
    p.write_text("stepz = 3\n")
    out = tmp_path / "loop"
    code, _, err = run_inproc(["loop", "--out", out, "--train-config", p, "--quick"], capsys)
    assert_one_line_error(code, err, "cfg.toml", "stepz")
    assert not (out / "scenes").exists() and not (out / "probe").exists()


def test_loop_config_api_unknown_key_and_wrong_type(tmp_path):
    """The loop's own config (what the flags map onto) rejects unknown keys and wrong types by name."""
    from gaspprobe.api import loop
    from gaspprobe.errors import ConfigError

    with pytest.raises(ConfigError, match="bench_limt"):
        loop(tmp_path / "l", bench_limt=3)
    with pytest.raises(ConfigError, match=r"train_steps: expected int \| None, got str"):
        loop(tmp_path / "l", train_steps="many")
    assert not (tmp_path / "l" / "scenes").exists()


def test_front_door_loop_survives_import_of_loop_module():
    """The loop lives in gaspprobe/pipeline.py, so importing it never shadows `gaspprobe.loop`."""
    import importlib

    import gaspprobe

    importlib.import_module("gaspprobe.pipeline")  # what the first gaspprobe.loop(...) call does
    assert callable(gaspprobe.loop)
    for name in ("probe", "train", "bench", "report", "loop"):
        assert callable(getattr(gaspprobe, name)), name


@pytest.mark.parametrize("argv,needles", [
    (["loop", "--train-steps", "abc"], ["--train-steps", "integer"]),
    (["loop", "--bench-limt", "3"], ["--bench-limt"]),
    (["probe", "-m", "oracle:random", "-s", ".", "-o", "x", "--pairs-per-gap", "two"], ["--pairs-per-gap"]),
])
def test_bad_flag_one_line(argv, needles, capsys):
    """A mistyped flag or a flag of the wrong type: one line naming the flag, exit 2."""
    code, _, err = run_inproc(argv, capsys)
    assert_one_line_error(code, err, *needles)


@pytest.mark.parametrize("spec,needles", [("gaps=1,x", ["gaps"]), ("layers=llm.99", ["llm.99"])])
def test_bad_probe_override(spec, needles, scenes_root, tiny_model_dir, tmp_path, capsys):
    key, val = spec.split("=")
    code, _, err = run_inproc(["probe", "-m", tiny_model_dir, "-s", scenes_root, "-o", tmp_path / "p", "-r",
                               "quick", f"--{key}", val], capsys)
    assert_one_line_error(code, err, *needles)


def test_report_on_non_run_folder(tmp_path, capsys):
    d = tmp_path / "notarun"
    d.mkdir()
    (d / "manifest.json").write_text("{half a manif")
    code, _, err = run_inproc(["report", d, "--out", tmp_path / "rep"], capsys)
    assert_one_line_error(code, err, "notarun")


# --------------------------------------------------------------------------- real child processes
@pytest.mark.slow
def test_subprocess_representative_errors(good_scene, tmp_path, text_only_dir, vsi_data):
    """The real interpreter + entry point: one stderr line, exit 2, for a few representative cases.

    Run concurrently (each child is mostly interpreter and torch start-up).
    """
    import os

    bad = tmp_path / "bad" / "scene0000_00"
    shutil.copytree(good_scene, bad)
    _break_depth_8bit(bad)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('steps = "ten"\n')
    cases = {
        "depth-8bit": (["probe", "-m", "oracle:random", "-s", bad.parent, "-o", tmp_path / "p1", "-r", "quick"],
                       ["1.png"]),
        "text-only": (["model", "inspect", text_only_dir], ["qwen2-text", "text-only"]),
        "config": (["train", "-m", text_only_dir, "-s", good_scene.parent, "-o", tmp_path / "t", "-c", cfg],
                   ["cfg.toml", "steps"]),
        "bad-flag": (["loop", "--train-steps", "abc"], ["--train-steps"]),
    }
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    procs = {k: subprocess.Popen(CHILD + [str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=env) for k, (argv, _) in cases.items()}
    for k, p in procs.items():
        out, err = p.communicate(timeout=180)
        assert_one_line_error(p.returncode, err, *cases[k][1])


@pytest.mark.slow
def test_subprocess_one_invalid_pose_warns_in_one_line(good_scene, tmp_path):
    """One nan pose: the frame is skipped, the command succeeds, the warning is one stderr line."""
    s = tmp_path / "s" / "scene0000_00"
    shutil.copytree(good_scene, s)
    (s / "pose" / "1.txt").write_text("nan 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    code, out, err = run_child(["scenes", "check", s.parent])
    assert code == 2 and "Traceback" not in err  # `check` reports the skipped frame as a problem
    assert "skipped 1 frame" in err
    code, out, err = run_child(["probe", "-m", "oracle:random", "-s", s.parent, "-o", tmp_path / "p", "-r", "quick"])
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "skipped 1 frame" in lines[0], err


@pytest.mark.slow
def test_subprocess_all_invalid_poses_one_line(good_scene, tmp_path):
    """Every pose invalid: ONE error line, no 'skipped N frames' warning before it (was a bug)."""
    s = tmp_path / "s" / "scene0000_00"
    shutil.copytree(good_scene, s)
    _break_all_poses_nan(s)
    code, _, err = run_child(["probe", "-m", "oracle:random", "-s", s.parent, "-o", tmp_path / "p", "-r", "quick"])
    assert_one_line_error(code, err, "pose", "invalid")


# --------------------------------------------------------------------------- more data files and run folders
@pytest.fixture(autouse=True)
def fresh_progress_bars():
    """transformers' progress bars as in a fresh process (`gaspprobe model ...` turns them off globally)."""
    from transformers.utils import logging as tlog

    was = tlog.is_progress_bar_enabled()
    tlog.enable_progress_bar()
    yield
    if not was:
        tlog.disable_progress_bar()


@pytest.mark.parametrize("command", ["probe", "train", "bench", "scenes-make"])
def test_out_is_an_existing_file(command, tmp_path, scenes_root, vsi_data, tiny_model_dir, capsys):
    """--out pointing at a file (a typo): one line naming it, not a FileExistsError traceback."""
    f = tmp_path / "results.txt"
    f.write_text("precious")
    argv = {
        "probe": ["probe", "-m", "oracle:random", "-s", scenes_root, "-o", f, "-r", "quick"],
        "train": ["train", "-m", tiny_model_dir, "-s", scenes_root, "-o", f, "--steps", "1", "--frames", "2",
                  "--no-progress"],
        "bench": ["bench", "run", "--model", "oracle:answers", "--benchmark", "synthetic_vsi", "--data", vsi_data,
                  "--out", f],
        "scenes-make": ["scenes", "make", f, "--n-scenes", "1", "--frames", "2", "--size", "32"],
    }[command]
    code, _, err = run_inproc(argv, capsys)
    assert_one_line_error(code, err, "results.txt", allow_progress=False)
    assert f.read_text() == "precious"


def _aa(tmp_path: Path, scenes_root: Path, edit) -> Path:
    from gaspprobe.benchmarking.synthetic import synthesize

    data = tmp_path / "aa"
    if not data.exists():
        synthesize(scenes_root, data, format="allangles")
    q = next(p for p in data.glob("*.json") if p.name != "manifest.json")
    recs = json.loads(q.read_text())
    edit(recs)
    p = tmp_path / "edited.json"
    p.write_text(json.dumps(recs))
    return p


@pytest.mark.parametrize("edit,needles", [
    (lambda r: r[0].pop("answer"), ["edited.json", "answer"]),
    (lambda r: r[0].update(category="smell"), ["edited.json", "smell"]),
    (lambda r: r[0].update(answer="Q"), ["edited.json", "'Q'"]),
    (lambda r: r.append("not a record"), ["edited.json"]),
])
def test_bad_allangles_json(edit, needles, tmp_path, scenes_root, capsys):
    p = _aa(tmp_path, scenes_root, edit)
    code, _, err = run_inproc(["bench", "run", "--model", "oracle:answers", "--benchmark", "synthetic_allangles",
                               "--data", p, "--image-root", tmp_path / "aa", "--out", tmp_path / "b"], capsys)
    if code == 2:  # a file-level problem (unknown category: the card cannot score it at all)
        assert_one_line_error(code, err, *needles)
        return
    # A bad row is data: that sample is recorded as failed (one stderr line naming file, row and
    # field), every other sample is still scored, and nothing is lost.
    assert_bad_row_recorded(code, err, tmp_path / "b", needles)


def test_bad_allangles_garbled_json(tmp_path, capsys):
    p = tmp_path / "data.json"
    p.write_text("[{'index':")
    code, _, err = run_inproc(["bench", "run", "--model", "oracle:answers", "--benchmark", "synthetic_allangles",
                               "--data", p, "--out", tmp_path / "b"], capsys)
    assert_one_line_error(code, err, "data.json")


@pytest.mark.parametrize("col,val,needles", [
    ("ground_truth", "many", ["ground_truth", "many"]),
    ("ground_truth", "-3", ["ground_truth"]),
])
def test_bad_vsi_values(col, val, needles, vsi_data, tmp_path, capsys):
    import pandas as pd

    d = _vsi_copy(vsi_data, tmp_path)
    pq = d / "test-00000-of-00001.parquet"
    df = pd.read_parquet(pq)
    i = int(df.index[df["options"].isna()][0])  # a numerical question
    df.loc[i, col] = val
    df.to_parquet(pq)
    code, _, err = run_inproc(_bench(d, tmp_path / "b"), capsys)
    # names the --data file, the row / id and the field; the sample is recorded as failed
    assert_bad_row_recorded(code, err, tmp_path / "b", ["vsi", "row ", "id ", *needles])


def test_bench_score_garbled_predictions(vsi_data, tmp_path, capsys):
    p = tmp_path / "preds.jsonl"
    p.write_text('{"id": "0", "raw": "3"}\n{garbage\n{"id": "1", "raw": "2"}\n')
    code, _, err = run_inproc(["bench", "score", "--benchmark", "synthetic_vsi", "--data", vsi_data,
                               "--predictions", p, "--out", tmp_path / "s"], capsys)
    assert_one_line_error(code, err, "preds.jsonl", "line 2")


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory, scenes_root) -> Path:
    import gaspprobe

    out = tmp_path_factory.mktemp("probe_run") / "p"
    gaspprobe.probe("oracle:random", scenes_root, "quick", out=out)
    return out


@pytest.mark.parametrize("damage,needles", [
    ("running", ["prun", "running"]),
    ("no-summary", ["prun", "summary.json"]),
    ("garbled-table", ["prun", "probe.parquet"]),
    ("garbled-manifest", ["prun"]),
])
def test_report_on_damaged_run(damage, needles, probe_run, tmp_path, capsys):
    run = tmp_path / "prun"
    shutil.copytree(probe_run, run)
    if damage == "running":
        m = json.loads((run / "manifest.json").read_text())
        m["status"] = "running"
        (run / "manifest.json").write_text(json.dumps(m))
    elif damage == "no-summary":
        (run / "summary.json").unlink()
    elif damage == "garbled-table":
        (run / "probe.parquet").write_bytes(b"PAR1 garbage")
    else:
        (run / "manifest.json").write_text('{"kind": "probe", "sta')
    code, _, err = run_inproc(["report", run, "--out", tmp_path / "rep", "--no-pdf"], capsys)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "rep" / "report.html").exists()


@pytest.mark.parametrize("argv,needles", [
    (["model", "tiny", "{tmp}/t", "--arch", "qwen25vl"], ["qwen25vl", "qwen2_5_vl"]),
    (["bench", "run", "--model", "oracle:answers", "--benchmark", "synthetic_vsi", "--data", "{vsi}", "--out",
      "{tmp}/b", "--parser", "nope"], ["nope"]),
    (["bench", "run", "--model", "oracle:answers", "--benchmark", "synthetic_vsi", "--data", "{vsi}", "--out",
      "{tmp}/b", "--frames", "0"], ["frames"]),
    (["bench", "run", "--model", "oracle:answers", "--benchmark", "synthetic_vsi", "--data", "{tmp}/nope.parquet",
      "--out", "{tmp}/b"], ["nope.parquet"]),
    (["probe", "-m", "{model}", "-s", "{scenes}", "-o", "{tmp}/p", "-r", "quick", "--dtype", "float8"], ["float8"]),
    (["train", "-m", "{model}", "-s", "{scenes}", "-o", "{tmp}/t", "--steps", "1", "--layers", "llm.99",
      "--no-progress"], ["llm.99"]),
    (["train", "-m", "{model}", "-s", "{scenes}", "-o", "{tmp}/t", "--steps", "1", "--mixed-precision", "fp8",
      "--no-progress"], ["mixed_precision", "fp8"]),
    (["scenes", "show", "{scenes}", "--frames", "0", "99", "--out", "{tmp}/x.png"], ["99"]),
    (["scenes", "make", "{tmp}/mk", "--objects", "5,2"], ["--objects"]),
])
def test_bad_option_values(argv, needles, tmp_path, vsi_data, scenes_root, tiny_model_dir, capsys):
    subs = {"{tmp}": str(tmp_path), "{vsi}": str(vsi_data), "{scenes}": str(scenes_root),
            "{model}": str(tiny_model_dir)}
    args = []
    for a in argv:
        for k, v in subs.items():
            a = a.replace(k, v)
        args.append(a)
    code, _, err = run_inproc(args, capsys)
    assert_one_line_error(code, err, *needles)


def test_train_one_frame_scenes(tmp_path, tiny_model_dir, capsys):
    """Scenes of one frame have no pairs: one line naming the scenes, before any model is loaded."""
    from gaspprobe.scenes import generate_scene, save_scene

    for k in range(2):
        save_scene(generate_scene(seed=k, frames=1, size=32, name=f"scene000{k}_00"),
                   tmp_path / "single" / f"scene000{k}_00")
    code, _, err = run_inproc(["train", "-m", tiny_model_dir, "-s", tmp_path / "single", "-o", tmp_path / "t",
                               "--steps", "1", "--no-progress"], capsys)
    assert_one_line_error(code, err, "single", "frame", allow_progress=False)


def test_loop_log_shows_stage_names(monkeypatch, tmp_path, capsys):
    """Stage log lines keep their '[probe/base]' prefix (rich must not read it as markup)."""
    import gaspprobe.pipeline as loop_mod

    def fake_loop(out, cfg, log=print):
        log("[probe/base] ...")
        log("[probe/base] done in 1.0s")

        class R:
            report = tmp_path / "report.html"
        return R()

    monkeypatch.setattr(loop_mod, "loop", fake_loop)
    code, out, err = run_inproc(["loop", "--out", tmp_path / "l"], capsys)
    assert code == 0, err
    assert "[probe/base] done in 1.0s" in out, out


# ------------------------------------------------------------- reruns into an interrupted folder, other settings
def _mark_interrupted(run: Path, keep_lines: int | None = None) -> None:
    m = json.loads((run / "manifest.json").read_text())
    m["status"] = "running"
    (run / "manifest.json").write_text(json.dumps(m))
    if keep_lines is not None:
        p = run / "predictions.jsonl"
        p.write_text("".join(p.read_text().splitlines(keepends=True)[:keep_lines]))


def test_bench_rerun_with_other_settings_is_refused_not_mixed(vsi_data, tmp_path, capsys):
    """An interrupted bench folder is resumed only with the same settings; otherwise one line, and the
    finished records are left alone (never a table mixing two settings)."""
    from gaspprobe.io import read_jsonl

    out = tmp_path / "b"
    base = ["bench", "run", "--model", "oracle:answers", "--benchmark", "synthetic_vsi", "--data", vsi_data,
            "--out", out, "--limit", "3"]
    assert run_inproc(base + ["--frames", "2"], capsys)[0] == 0
    _mark_interrupted(out, keep_lines=1)
    kept = (out / "predictions.jsonl").read_text()
    code, _, err = run_inproc(base + ["--frames", "3"], capsys)
    assert_one_line_error(code, err, "frames")
    assert (out / "predictions.jsonl").read_text() == kept
    code, _, err = run_inproc(base + ["--frames", "2"], capsys)  # same settings: resumes
    assert code == 0, err
    recs = read_jsonl(out / "predictions.jsonl")
    assert (out / "predictions.jsonl").read_text().startswith(kept)
    assert len(recs) == 3 and len({r["id"] for r in recs}) == 3


def test_train_resume_with_other_config_is_refused(scenes_root, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "t"
    base = ["train", "-m", tiny_model_dir, "-s", scenes_root, "-o", out, "--frames", "2", "--batch-size", "1",
            "--no-progress", "--threads", "1"]
    code, _, err = run_inproc(base + ["--steps", "2"], capsys)
    assert code == 0, err
    _mark_interrupted(out)
    code, _, err = run_inproc(base + ["--steps", "3", "--resume"], capsys)
    assert_one_line_error(code, err, "steps")


def _corrupt_first_video(vsi_data: Path, tmp_path: Path):
    import pandas as pd

    d = _vsi_copy(vsi_data, tmp_path)
    df = pd.read_parquet(d / "test-00000-of-00001.parquet").head(4)
    df.to_parquet(d / "test-00000-of-00001.parquet")
    video = d / str(df.loc[0, "dataset"]) / f"{df.loc[0, 'scene_name']}.mp4"
    good = video.read_bytes()
    video.write_bytes(good[:3000])
    return d, video, good


def test_bench_corrupt_video_recorded(vsi_data, tiny_model_dir, tmp_path, capsys):
    """A truncated mp4: its samples are recorded as failed (the reason names the file), run completes."""
    from gaspprobe.io import read_jsonl

    d, video, _ = _corrupt_first_video(vsi_data, tmp_path)
    out = tmp_path / "b"
    code, _, err = run_inproc(["bench", "run", "--model", tiny_model_dir, "--benchmark", "synthetic_vsi", "--data", d,
                               "--out", out, "--frames", "2", "--device", "cpu"], capsys)
    assert code == 0, err
    recs = read_jsonl(out / "predictions.jsonl")
    assert len(recs) == 4
    assert all(r["failed"] and video.name in r["failed"] and r["score"] == 0.0 for r in recs)
    assert json.loads((out / "summary.json").read_text())["n_failed"] == 4


def test_bench_failed_samples_retried_after_repair(vsi_data, tiny_model_dir, tmp_path, capsys):
    from gaspprobe.io import read_jsonl

    d, video, good = _corrupt_first_video(vsi_data, tmp_path)
    out = tmp_path / "b"
    argv = ["bench", "run", "--model", tiny_model_dir, "--benchmark", "synthetic_vsi", "--data", d, "--out", out,
            "--frames", "2", "--device", "cpu"]
    assert run_inproc(argv, capsys)[0] == 0
    video.write_bytes(good)  # the user repairs the file and reruns the same command
    code, _, err = run_inproc(argv, capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_failed"] == 0, summary["n_failed"]
    latest = {r["id"]: r for r in read_jsonl(out / "predictions.jsonl")}
    assert all(not r["failed"] for r in latest.values())


def test_allangles_empty_image_recorded(tmp_path, scenes_root, tiny_model_dir, capsys):
    from gaspprobe.benchmarking.synthetic import synthesize
    from gaspprobe.io import read_jsonl

    data = tmp_path / "aa"
    synthesize(scenes_root, data, format="allangles")
    img = sorted(data.rglob("*.png"))[-1]
    img.write_bytes(b"")
    out = tmp_path / "b"
    code, _, err = run_inproc(["bench", "run", "--model", tiny_model_dir, "--benchmark", "synthetic_allangles",
                               "--data", data / "data.json", "--out", out, "--device", "cpu"], capsys)
    assert code == 0, err
    failed = [r for r in read_jsonl(out / "predictions.jsonl") if r["failed"]]
    assert failed and all(img.name in r["failed"] for r in failed)


def test_depth_at_lower_resolution_is_resized_not_refused(scene):
    """ScanNet-style depth smaller than colour: accepted, nearest-resized to the colour size."""
    import numpy as np
    from PIL import Image

    from gaspprobe.scenes import load_scene

    before = load_scene(scene)
    for p in (scene / "depth").glob("*.png"):
        with Image.open(p) as im:
            a = np.asarray(im)
        Image.fromarray(np.ascontiguousarray(a[::2, ::2])).save(p)  # 32x32 from 64x64: pixel (2y, 2x)
    after = load_scene(scene)
    assert after.depth.shape == before.depth.shape
    # nearest-neighbour upsampling by 2 through pixel centres: output pixel (y, x) reads (y//2, x//2)
    exp = before.depth[:, ::2, ::2].repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert bool((after.depth == exp).all())
