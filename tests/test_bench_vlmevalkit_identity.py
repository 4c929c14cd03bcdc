"""Identity test: the ``vlmevalkit`` profile builds exactly the inputs VLMEvalKit's own
``Qwen2VLChat`` builds for Qwen2.5-VL (input ids, attention mask, pixel tensors, grids, seconds per
grid): VSI-Bench as a video (VLMEvalKit marks the class ``VIDEO_LLM``) and All-Angles as images.

VLMEvalKit is not on the package registry, and its code is not copied here. Point
``GASPPROBE_VLMEVALKIT_SRC`` at a checkout (a folder holding ``vlmeval/``; checked against
open-compass/VLMEvalKit e8e78f05, 2026-08-18) in a python that has ``qwen-vl-utils``, ``decord``,
``validators`` and ``sty``; without it the tests skip with that reason. Only CPU shims are applied
to VLMEvalKit's class: ``inputs.to("cuda")`` stays on the CPU, ``from_pretrained`` drops
``flash_attention_2`` / ``device_map="auto"``, the GPU-memory probe reports a GPU, and ``generate``
is intercepted to capture its inputs (nothing is generated).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from test_bench_lmms_identity import QWEN25_TEMPLATE

_SRC = os.environ.get("GASPPROBE_VLMEVALKIT_SRC", "")
# vlmeval/config.py's Qwen2.5-VL entries
VLMK_PIXELS = dict(min_pixels=1280 * 28 * 28, max_pixels=16384 * 28 * 28)


@pytest.fixture(scope="module")
def vlmk(tmp_path_factory):
    if not _SRC or not (Path(_SRC) / "vlmeval").is_dir():
        pytest.skip("VLMEvalKit is not on the package registry: set GASPPROBE_VLMEVALKIT_SRC to a checkout")
    for m in ("qwen_vl_utils", "decord", "validators", "sty"):
        if importlib.util.find_spec(m) is None:
            pytest.skip(f"{m} is not installed (VLMEvalKit's Qwen2VLChat needs it)")
    from gaspprobe.models.video import ensure_torchvision, torchvision_problem

    if importlib.util.find_spec("torchvision") is None or not ensure_torchvision():
        pytest.skip(torchvision_problem() if importlib.util.find_spec("torchvision") else "torchvision is not installed")
    import torch
    import transformers
    from transformers import AutoTokenizer, Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor
    from transformers.feature_extraction_utils import BatchFeature

    from gaspprobe.models.testing import tiny_model_dir

    mp = pytest.MonkeyPatch()
    orig_to = BatchFeature.to
    mp.setattr(BatchFeature, "to", lambda self, *a, **k: orig_to(self, *("cpu" if x == "cuda" else x for x in a), **k))
    cls = transformers.Qwen2_5_VLForConditionalGeneration
    orig_fp = cls.from_pretrained.__func__

    def cpu_from_pretrained(klass, *a, **kw):
        kw.pop("attn_implementation", None)
        kw.pop("device_map", None)
        return orig_fp(klass, *a, **kw)

    mp.setattr(cls, "from_pretrained", classmethod(cpu_from_pretrained))
    mp.syspath_prepend(_SRC)
    import vlmeval.vlm.qwen2_vl.model as M

    mp.setattr(M, "get_gpu_memory", lambda: [80000])
    # a tiny Qwen2.5-VL laid out like the real checkpoint (its preprocessor config, chat template)
    root = tmp_path_factory.mktemp("vlmk")
    src = tiny_model_dir("qwen2_5_vl")
    mdir = root / "model"
    shutil.copytree(src, mdir)
    for f in mdir.glob("*processor*json"):
        f.unlink()
    tok = AutoTokenizer.from_pretrained(src)
    real = dict(min_pixels=3136, max_pixels=12845056, patch_size=14, merge_size=2, temporal_patch_size=2)
    Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**real), tokenizer=tok,
                        video_processor=Qwen2VLVideoProcessor(size={"shortest_edge": 3136, "longest_edge": 12845056},
                                                              patch_size=14, merge_size=2, temporal_patch_size=2),
                        chat_template=QWEN25_TEMPLATE).save_pretrained(mdir)
    m = M.Qwen2VLChat(model_path=str(mdir), use_custom_prompt=False, **VLMK_PIXELS)
    captured: dict = {}

    def fake_generate(**kw):
        captured.clear()
        captured.update(kw)
        return torch.cat([kw["input_ids"], torch.full((1, 1), tok.eos_token_id)], 1)

    m.model.generate = fake_generate
    yield types.SimpleNamespace(m=m, captured=captured, mdir=mdir, root=root)
    mp.undo()
    sys.modules.pop("vlmeval", None)


def _ours(vlmk, prof, sample, family="qwen2_5_vl"):
    import torch
    from transformers import AutoProcessor

    from gaspprobe.benchmarking import profiles
    from gaspprobe.benchmarking.runner import _VisualLoader

    proc = AutoProcessor.from_pretrained(vlmk.mdir)
    ad = types.SimpleNamespace(processor=proc, model=vlmk.m.model, device=torch.device("cpu"), dtype=torch.float32)
    loader = _VisualLoader(32, prof.sampler_for(family), jpeg=prof.jpeg_passes(family), jpeg_quality=prof.jpeg_quality,
                           qwen_pixels=prof.pixels.get(family) if family in prof.qwen_resize else None,
                           qwen_patch=prof.qwen_resize.get(family, 14))
    as_video = prof.wants_video(family, sample.visual)
    vis, extra = loader(sample, as_video=as_video)
    return profiles.build_inputs(ad, [(vis, sample.prompt, as_video, extra)], prof), extra


def _equal(ref, ours):
    import torch

    keys = [k for k in ("input_ids", "attention_mask", "pixel_values", "image_grid_thw", "pixel_values_videos",
                        "video_grid_thw", "second_per_grid_ts") if k in ref]
    assert keys and all(k in ours for k in keys), (sorted(ref), sorted(ours))
    for k in keys:
        assert torch.equal(ref[k], ours[k]), k


@pytest.mark.parametrize("size,n,fps", [((224, 224), 48, 12), ((180, 320), 60, 10), ((480, 640), 20, 24)])
def test_vlmevalkit_vsibench_video_is_token_identical(vlmk, size, n, fps):
    """VSI-Bench_32frame: the mp4 through qwen-vl-utils (``nframes`` 32, or the frame count floored
    to even when shorter), min_pixels 1280*28*28, no fps to the processor; VLMEvalKit's prompt."""
    from gaspprobe.benchmarking import profiles
    from gaspprobe.benchmarking.card import Sample
    from gaspprobe.benchmarking.video import write_video

    rng = np.random.default_rng(n)
    frames = np.stack([np.clip(rng.normal(128, 60, size + (3,)) + 3 * i, 0, 255).astype(np.uint8) for i in range(n)])
    video = vlmk.root / f"v{n}" / "scene.mp4"
    write_video(video, frames, fps=fps)
    prompt = ("These are frames of a video.\nHow many chair(s) are in this room?\n"
              "Answer briefly and directly in one float number.")
    vlmk.m.nframe, vlmk.m.fps = 32, None  # what inference_video.py sets for VSI-Bench_32frame
    vlmk.m.generate(message=[dict(type="video", value=str(video)), dict(type="text", value=prompt)],
                    dataset="VSI-Bench")
    ref = dict(vlmk.captured)
    assert ref["top_k"] == 1 and ref["max_new_tokens"] == 2048  # effectively greedy, as the profile decodes
    ours, extra = _ours(vlmk, profiles.get("vlmevalkit"), Sample(
        id="0", question_type="object_counting", kind="na", prompt=prompt, target="2", task="object_counting",
        visual={"video": str(video)}))
    _equal(ref, ours)
    assert len(extra["frame_indices"]) == min(32, n // 2 * 2)


def test_vlmevalkit_allangles_images_are_token_identical(vlmk, tmp_path):
    """All-Angles: each view image file as an image message, min_pixels 1280*28*28."""
    from PIL import Image

    from gaspprobe.benchmarking import profiles
    from gaspprobe.benchmarking.card import Sample

    rng = np.random.default_rng(7)
    paths = []
    for k, hw in enumerate([(300, 400)] * 3):
        p = tmp_path / f"view{k}.png"
        Image.fromarray(rng.integers(0, 255, hw + (3,), dtype=np.uint8)).save(p)
        paths.append(str(p))
    prompt = "Question: Which view shows the chair?\nOptions:\nA. View 1\nB. View 2\nC. View 3\nPlease select."
    vlmk.m.generate(message=[dict(type="image", value=p) for p in paths] + [dict(type="text", value=prompt)],
                    dataset="All-Angles-Bench")
    ref = dict(vlmk.captured)
    ours, _ = _ours(vlmk, profiles.get("vlmevalkit"), Sample(
        id="0", question_type="counting", kind="mca", prompt=prompt, target="A", task="counting",
        options={"A": "View 1", "B": "View 2", "C": "View 3"}, visual={"images": paths}))
    _equal(ref, ours)
