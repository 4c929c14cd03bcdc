"""Identity test: the ``vlmevalkit`` profile builds exactly the inputs VLMEvalKit's own
``Qwen2VLChat`` builds for Qwen2.5-VL (input ids, attention mask, pixel tensors, grids, seconds per
grid): VSI-Bench as a video (VLMEvalKit marks the class ``VIDEO_LLM``) and All-Angles as images;
and those its ``Gemma3`` builds from VSI-Bench's saved JPEG frames.

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
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from test_bench_lmms_identity import (_same, intercept_generate, noise_video, profile_inputs, qwen25_real_layout,
                                      video_sample)

_SRC = os.environ.get("GASPPROBE_VLMEVALKIT_SRC", "")
# vlmeval/config.py's Qwen2.5-VL entries
VLMK_PIXELS = dict(min_pixels=1280 * 28 * 28, max_pixels=16384 * 28 * 28)


def _cpu_loading(mp, cls) -> None:
    """``cls.from_pretrained`` without ``flash_attention_2`` / ``device_map`` (patched on the class
    itself, where VLMEvalKit's module looks it up)."""
    orig_fp = cls.from_pretrained.__func__

    def cpu_from_pretrained(klass, *a, **kw):
        kw.pop("attn_implementation", None)
        kw.pop("device_map", None)
        return orig_fp(klass, *a, **kw)

    mp.setattr(cls, "from_pretrained", classmethod(cpu_from_pretrained))


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
    import transformers
    from transformers import AutoTokenizer
    from transformers.feature_extraction_utils import BatchFeature

    mp = pytest.MonkeyPatch()
    orig_to = BatchFeature.to
    mp.setattr(BatchFeature, "to", lambda self, *a, **k: orig_to(self, *("cpu" if x == "cuda" else x for x in a), **k))
    _cpu_loading(mp, transformers.Qwen2_5_VLForConditionalGeneration)
    mp.syspath_prepend(_SRC)
    import vlmeval.vlm.qwen2_vl.model as M

    mp.setattr(M, "get_gpu_memory", lambda: [80000])
    # a tiny Qwen2.5-VL laid out like the real checkpoint (its preprocessor config, chat template)
    root = tmp_path_factory.mktemp("vlmk")
    mdir = qwen25_real_layout(root / "model")
    tok = AutoTokenizer.from_pretrained(mdir)
    m = M.Qwen2VLChat(model_path=str(mdir), use_custom_prompt=False, **VLMK_PIXELS)
    captured = intercept_generate(m.model, tok.eos_token_id)
    yield types.SimpleNamespace(m=m, captured=captured, mdir=mdir, root=root)
    mp.undo()
    sys.modules.pop("vlmeval", None)


def _ours(vlmk, sample, family="qwen2_5_vl"):
    from transformers import AutoProcessor

    return profile_inputs("vlmevalkit", AutoProcessor.from_pretrained(vlmk.mdir), vlmk.m.model, family, sample)


@pytest.mark.parametrize("size,n,fps", [((224, 224), 48, 12), ((180, 320), 60, 10), ((480, 640), 20, 24)])
def test_vlmevalkit_vsibench_video_is_token_identical(vlmk, size, n, fps):
    """VSI-Bench_32frame: the mp4 through qwen-vl-utils (``nframes`` 32, or the frame count floored
    to even when shorter), min_pixels 1280*28*28, no fps to the processor; VLMEvalKit's prompt."""
    video = noise_video(vlmk.root / f"v{n}" / "scene.mp4", size, n, fps, n)
    prompt = ("These are frames of a video.\nHow many chair(s) are in this room?\n"
              "Answer briefly and directly in one float number.")
    vlmk.m.nframe, vlmk.m.fps = 32, None  # what inference_video.py sets for VSI-Bench_32frame
    vlmk.m.generate(message=[dict(type="video", value=str(video)), dict(type="text", value=prompt)],
                    dataset="VSI-Bench")
    ref = dict(vlmk.captured)
    assert ref["top_k"] == 1 and ref["max_new_tokens"] == 2048  # effectively greedy, as the profile decodes
    ours, extra = _ours(vlmk, video_sample(prompt, video))
    _same(ref, ours, video=True)
    assert len(extra["frame_indices"]) == min(32, n // 2 * 2)


def test_vlmevalkit_allangles_images_are_token_identical(vlmk, tmp_path):
    """All-Angles: each view image file as an image message, min_pixels 1280*28*28."""
    from PIL import Image

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
    ours, _ = _ours(vlmk, Sample(id="0", question_type="counting", kind="mca", prompt=prompt, target="A",
                                 task="counting", options={"A": "View 1", "B": "View 2", "C": "View 3"},
                                 visual={"images": paths}))
    _same(ref, ours)


@pytest.fixture(scope="module")
def vlmk_gemma3(vlmk):
    """VLMEvalKit's ``Gemma3`` (vlm/gemma.py) on the tiny Gemma 3 with the same CPU shims, and a
    PIL JPEG decode standing in for torchvision's image extension (which does not load here)."""
    import io as _io

    import torch
    import torchvision.io
    import transformers
    from PIL import Image

    from gaspprobe.models.testing import tiny_model_dir

    def pil_decode(src, mode=None, apply_exif_orientation=False):
        data = bytes(src.numpy().tobytes()) if torch.is_tensor(src) else Path(src).read_bytes()
        with Image.open(_io.BytesIO(data)) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)

    mp = pytest.MonkeyPatch()
    mp.setattr(torchvision.io, "decode_image", pil_decode)
    _cpu_loading(mp, transformers.Gemma3ForConditionalGeneration)
    import vlmeval.vlm.gemma as G

    mdir = tiny_model_dir("gemma3")
    m = G.Gemma3(model_path=str(mdir))
    captured = intercept_generate(m.model, m.processor.tokenizer.eos_token_id)
    yield types.SimpleNamespace(m=m, captured=captured, mdir=mdir)
    mp.undo()


def test_vlmevalkit_gemma3_vsibench_frames_are_token_identical(vlmk, vlmk_gemma3, tmp_path):
    """VSI-Bench_8frame for Gemma 3 (not a VIDEO_LLM): the dataset's frames, ``np.linspace(0, n-1,
    k, dtype=int)``, saved as JPEG with PIL's defaults (VsiBench.save_video_frames; emulated here,
    the dataset module being VLMEvalKit's), then image messages and the text; a system turn."""
    from PIL import Image
    from transformers import AutoProcessor

    from gaspprobe.benchmarking.vsibench import read_video_frames

    video = noise_video(tmp_path / "scene.mp4", (180, 320), 40, 10, 5)
    frames, idx, n = read_video_frames(video, 8, sampler="linspace")
    paths = []
    for i, f in enumerate(frames):
        p = tmp_path / f"frame-{i + 1}-of-8.jpg"
        Image.fromarray(f).save(p)
        paths.append(str(p))
    prompt = ("These are frames of a video.\nHow many chair(s) are in this room?\n"
              "Answer briefly and directly in one float number.")
    vlmk_gemma3.m.generate(message=[dict(type="image", value=p) for p in paths] + [dict(type="text", value=prompt)],
                           dataset="VSI-Bench")
    ref = dict(vlmk_gemma3.captured)
    ours, extra = profile_inputs("vlmevalkit", AutoProcessor.from_pretrained(vlmk_gemma3.mdir),
                                 vlmk_gemma3.m.model, "gemma3", video_sample(prompt, video), frames=8)
    _same(ref, ours)
    assert extra["frame_indices"] == [int(i) for i in idx]
