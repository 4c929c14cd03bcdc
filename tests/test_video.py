"""Video input: transformers' own video processors (torchvision made importable), the frames a
video token covers, the probe's frame distance on them, training and reloading with video.

The grids themselves are checked against gradient-coded video frames at real checkpoint settings in
``tests/test_models_realgrid.py`` (``test_video_grid_matches_decoded_pixels_at_real_settings``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gaspprobe.errors import ConfigError
from gaspprobe.models.video import ensure_torchvision
from gaspprobe.probing.temporal import sample_pairs

needs_video = pytest.mark.skipif(not ensure_torchvision(),
                                 reason="transformers' video processors need torchvision (gaspprobe.models.video)")

PAPER_MODELS = ("qwen2_5_vl", "llava_next_video")


def _video_families() -> list[str]:
    from gaspprobe.models.registry import ADAPTERS

    return [n for n in ADAPTERS.names() if "video" in ADAPTERS.get(n).modalities()]


#: frames per temporal token slice, by the families' documented layouts (not read from the grids)
_TPS = {"qwen2_vl": 2, "qwen2_5_vl": 2, "qwen3_vl": 2, "glm4v": 2}


# --------------------------------------------------------------------------- pair sampling
def test_sample_pairs_on_positions_by_hand():
    # Qwen-style slices anchored at frames 0, 2, 4, 6: Δt = 1 cannot occur, Δt = 2 links neighbours
    pairs = sample_pairs(4, [1, 2, 4, 8], pairs_per_gap=10, seed=0, both_directions=False, positions=[0, 2, 4, 6])
    by_gap: dict = {}
    for i, j, g in pairs:
        by_gap.setdefault(g, []).append((i, j))
    assert sorted(by_gap) == [2, 4]
    assert by_gap[2] == [(0, 1), (1, 2), (2, 3)]
    assert by_gap[4] == [(0, 2), (1, 3)]


@pytest.mark.parametrize("n,gaps,k,seed", [(9, [1, 2, 4, 8], 3, 0), (32, [1, 2, 4, 8, 16, 24], 4, 7), (5, [1, 4, 6], 2, 3)])
def test_sample_pairs_positions_range_is_the_old_draw(n, gaps, k, seed):
    """Image runs keep their numbers: positions 0..n-1 give exactly the draws without positions."""
    assert sample_pairs(n, gaps, k, seed=seed) == sample_pairs(n, gaps, k, seed=seed, positions=list(range(n)))


# --------------------------------------------------------------------------- torchvision
@needs_video
def test_transformers_video_processor_runs_here():
    from transformers import Qwen2VLVideoProcessor

    out = Qwen2VLVideoProcessor(size={"shortest_edge": 56 * 56, "longest_edge": 224 * 224})(
        videos=[np.zeros((3, 224, 224, 3), np.uint8)], return_tensors="pt", do_sample_frames=False)
    # 3 frames -> 2 temporal patches (the last frame repeated), 224 px -> 16 x 16 patches of 14 px
    assert out["video_grid_thw"].tolist() == [[2, 16, 16]]


# --------------------------------------------------------------------------- grids
def test_the_issue_families_have_video_paths():
    assert set(_video_families()) == {"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava_onevision", "llava_next_video",
                                      "internvl", "smolvlm", "glm4v"}


#: tokens per frame slice at the tiny models' settings, by hand: LLaVA-NeXT-Video 24x24 patches
#: pooled 2x2; OneVision's 112 px tower 8x8 patches -> bilinear 4x4; InternVL 448/14 = 32 -> shuffle
#: 0.5 -> 16x16; SmolVLM 27 patches -> shuffle 3 -> 9x9
_SLICE = {"llava_next_video": (12, 12), "llava_onevision": (4, 4), "internvl": (16, 16), "smolvlm": (9, 9)}


@needs_video
@pytest.mark.parametrize("arch", _video_families())
def test_video_grid_covers_frames_and_counts_tokens(arch):
    from gaspprobe.models.testing import tiny_adapter

    ad = tiny_adapter(arch)
    F, H, W = 5, 240, 320
    g = ad.token_grid((H, W), F, modality="video")
    frames = g.extra["frames"]
    if _TPS.get(arch) == 2:  # two frames per temporal patch; an odd count repeats the last
        assert frames.tolist() == [[0, 1], [2, 3], [4, 4]]
    else:  # one frame per slice
        assert frames.tolist() == [[f] for f in range(F)] and (g.rows, g.cols) == _SLICE[arch]
    T, R, C = g.shape
    assert T == frames.shape[0]
    extra = 1 if arch == "llava_onevision" else 0  # OneVision: one newline after the last frame
    assert ad.image_tokens((H, W), F, modality="video") == T * R * C + extra
    seq = g.seq_index.reshape(-1)
    assert bool((seq[1:] > seq[:-1]).all())  # frame-major, row-major order in the sequence


# --------------------------------------------------------------------------- the probe on video
def _video_xyz(real, anchors_of):
    """The real adapter, but every layer's features are the oracle world points of the frame
    ``anchors_of(F)[t]`` on the real video grid: the probe scores ~1 iff its ground truth anchors
    each temporal slice at that frame. ``anchors_of`` is written from the families' documented
    layout, not read from the grid."""
    from gaspprobe.models.adapter import LayerCapture
    from gaspprobe.probing.oracle import _xyz_capture
    from gaspprobe.scenes import token_world_points

    ad = type(real)(real.model, real.processor, model_id="video-xyz")
    scene_box = {}

    def set_scene(scene):
        scene_box["s"] = scene

    def capture(frames, *, mode="hidden", layers=None, per_frame=False, prompt=None, prepared=None,
                modality="images"):
        assert modality == "video"
        F, H, W = frames.shape[:3]
        grid = real.token_grid((H, W), F, modality="video")
        ad.last_grid = grid
        sub = scene_box["s"].subset(anchors_of(F))
        xyz, valid = token_world_points(sub, grid)
        for name in layers or ad.layer_names():
            yield _xyz_capture(name, xyz.float(), valid.bool(), "hidden")

    ad.set_scene, ad.capture = set_scene, capture
    return ad


@needs_video
@pytest.mark.parametrize("arch", _video_families())
def test_probe_video_ground_truth_anchors_each_slice(arch):
    from gaspprobe.models.testing import tiny_adapter
    from gaspprobe.probing.run import probe
    from gaspprobe.scenes.synthetic import generate_scene

    real = tiny_adapter(arch)
    tps = _TPS.get(arch, 1)
    scenes = [generate_scene(i, frames=9, size=224) for i in range(2)]
    kw = dict(modality="video", frames_per_clip=9, gaps=[1, 2, 4, 8], modes=["hidden"], tolerances=[0, 1],
              depth_probe=False, layers=["llm.0"])
    good = probe(_video_xyz(real, lambda F: [t * tps for t in range(math.ceil(F / tps))]), scenes, "quick", **kw)
    s = good.summary
    assert s["modality"] == "video" and s["video_fps"] == 2.0
    gaps = sorted(int(g) for g, a in s["accuracy_by_gap"].items() if a == a)
    assert gaps == ([2, 4, 8] if tps == 2 else [1, 2, 4, 8])  # Qwen: two frames share a token, no Δt = 1
    assert s["accuracy"]["r1"]["llm.0"] >= 0.99, s["accuracy"]
    if tps == 2:  # the control: anchoring slices at their SECOND frame is visibly worse
        bad = probe(_video_xyz(real, lambda F: [min(t * tps + 1, F - 1) for t in range(math.ceil(F / tps))]),
                    scenes, "quick", **kw)
        assert bad.summary["accuracy"]["r0"]["llm.0"] < s["accuracy"]["r0"]["llm.0"] - 0.05


@needs_video
@pytest.mark.parametrize("arch", PAPER_MODELS)
def test_paper_models_probe_with_images_and_with_video(arch, tmp_path):
    from gaspprobe.models.testing import tiny_model_dir
    from gaspprobe.probing.run import probe
    from gaspprobe.scenes.synthetic import generate_scene

    scenes = [generate_scene(i, frames=8, size=224) for i in range(2)]
    kw = dict(frames_per_clip=8, gaps=[1, 2, 4], modes=["hidden"], depth_probe=False)
    img = probe(str(tiny_model_dir(arch)), scenes, "quick", out=tmp_path / "img", **kw)
    vid = probe(str(tiny_model_dir(arch)), scenes, "quick", out=tmp_path / "vid", modality="video", **kw)
    assert img.summary["modality"] == "images" and vid.summary["modality"] == "video"
    assert img.summary["n_matches"] > 0 and vid.summary["n_matches"] > 0
    import json

    man = json.loads((tmp_path / "vid" / "manifest.json").read_text())
    assert man["config"]["modality"] == "video"


# --------------------------------------------------------------------------- training
@needs_video
@pytest.mark.parametrize("arch", PAPER_MODELS)
def test_train_with_video_keeps_the_video_processor(arch, tmp_path):
    from gaspprobe.models import load
    from gaspprobe.models.testing import tiny_model_dir
    from gaspprobe.scenes.synthetic import generate_scene
    from gaspprobe.training.trainer import train

    scenes = [generate_scene(i, frames=8, size=224) for i in range(3)]
    res = train(str(tiny_model_dir(arch)), scenes, tmp_path / "run", steps=3, frames_per_clip=4, clip_window=4,
                modality="video", val_frames=8, val_gaps=[1, 2, 4], eval_every=0, checkpoint_every=3,
                progress=False)
    assert res.steps == 3 and np.isfinite(res.summary["final_loss"])
    ad = load(res.model_dir, dtype="float32")
    assert getattr(ad.processor, "video_processor", None) is not None
    g = ad.token_grid((224, 224), 4, modality="video")
    assert g.shape[0] == (2 if arch.startswith("qwen") else 4)


# --------------------------------------------------------------------------- bad input
def test_video_on_a_family_without_a_video_path_is_one_line():
    from gaspprobe.models.testing import tiny_adapter

    ad = tiny_adapter("llava")
    with pytest.raises(ConfigError, match=r"modality: LLaVA-1\.5 takes images only \(families with a video path: "):
        ad.token_grid((224, 224), 2, modality="video")


def test_video_without_a_video_processor_names_the_reason():
    from gaspprobe.models.processors import Qwen2_5_VLImageOnlyProcessor
    from gaspprobe.models.testing import tiny_adapter

    real = tiny_adapter("qwen2_5_vl")
    proc = Qwen2_5_VLImageOnlyProcessor(image_processor=real.processor.image_processor,
                                        tokenizer=real.processor.tokenizer,
                                        chat_template=real.processor.chat_template)
    ad = type(real)(real.model, proc, model_id="image-only")
    with pytest.raises(ConfigError, match="needs the Qwen2.5-VL processor's video processor"):
        ad.token_grid((224, 224), 2, modality="video")


@pytest.mark.parametrize("kw,msg", [
    ({"modality": "audio"}, "modality must be one of images, video"),
    ({"modality": "video", "per_frame": True}, "per_frame: a video is one sequence"),
    ({"modality": "video", "video_fps": 0}, "video_fps: must be > 0"),
])
def test_recipe_refuses_bad_video_settings(kw, msg):
    from gaspprobe.probing.recipe import load_recipe

    with pytest.raises(ConfigError, match=msg):
        load_recipe("quick", **kw)


def test_cli_video_on_an_image_only_family_exits_2(tmp_path, capsys):
    from gaspprobe.cli import main
    from gaspprobe.models.testing import tiny_model_dir
    from gaspprobe.scenes.synthetic import make_scenes

    make_scenes(tmp_path / "scenes", n_scenes=2, frames=4, size=224)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["probe", "--model", str(tiny_model_dir("llava")), "--scenes", str(tmp_path / "scenes"), "--recipe",
              "quick", "--modality", "video", "--out", str(tmp_path / "run")])
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip() and "Loading weights" not in l]
    assert e.value.code == 2
    assert len(err) == 1 and "modality: LLaVA-1.5 takes images only" in err[0], err
    assert not (tmp_path / "run" / "summary.json").exists()


# --------------------------------------------------------------------------- bench
class _Recorder:
    """A real adapter whose generate / prepare calls are recorded (modality of each)."""

    def __init__(self, ad):
        self._ad, self.calls = ad, []

    def __getattr__(self, name):
        return getattr(self._ad, name)

    def generate(self, batch, **kw):
        self.calls.append(("generate", kw.get("modality", "images"), len(batch)))
        return self._ad.generate(batch, **kw)

    def prepare(self, samples, **kw):
        self.calls.append(("prepare", kw.get("modality", "images"), len(samples)))
        return self._ad.prepare(samples, **kw)


@needs_video
@pytest.mark.parametrize("scorer", ["generate", "likelihood"])
def test_bench_modality_video_feeds_video_samples_through_the_video_path(tmp_path, scorer):
    from pathlib import Path

    from gaspprobe import io
    from gaspprobe.benchmarking.runner import run
    from gaspprobe.models.testing import tiny_adapter

    vsi = Path(__file__).parent / "fixtures" / "bench" / "vsi"
    rec = _Recorder(tiny_adapter("qwen2_5_vl"))
    res = run(rec, "vsibench", vsi, tmp_path / "r", frames=4, limit=3, blind=False, modality="video", scorer=scorer)
    assert res.summary["modality"] == "video"
    assert io.read_manifest(tmp_path / "r")["config"]["modality"] == "video"
    assert rec.calls and {m for _, m, _ in rec.calls} == {"video"}
    again = run(tiny_adapter("qwen2_5_vl"), "vsibench", vsi, tmp_path / "img", frames=4, limit=3, blind=False,
                scorer=scorer)
    assert again.summary["modality"] == "images"


def test_bench_modality_bad_settings_are_one_line(tmp_path):
    from pathlib import Path

    from gaspprobe.benchmarking.runner import run
    from gaspprobe.models.testing import tiny_adapter

    vsi = Path(__file__).parent / "fixtures" / "bench" / "vsi"
    with pytest.raises(ConfigError, match="modality: profile 'lmms-eval' decides how videos are fed"):
        run(tiny_adapter("qwen2_5_vl"), "vsibench", vsi, tmp_path / "a", frames=2, limit=1, blind=False,
            modality="video", profile="lmms-eval")
    with pytest.raises(ConfigError, match=r"modality: LLaVA-1\.5 takes images only"):
        run(tiny_adapter("llava"), "vsibench", vsi, tmp_path / "b", frames=2, limit=1, blind=False, modality="video")
