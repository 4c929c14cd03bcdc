"""Identity test: the ``lmms-eval`` and ``lmms-eval-simple`` profiles build exactly the inputs
lmms-eval 0.7.3's own Qwen2.5-VL classes build (input ids, attention mask, video pixel tensor,
grid, seconds per grid): the chat class ``--model qwen2_5_vl`` resolves to by default
(``models/chat/qwen2_5_vl.py``) and the simple class ``--force_simple`` gives.

Runs where lmms-eval 0.7.3, qwen-vl-utils, decord and torchvision import. lmms-eval pins packages
this project's environment does not want (PyAV 15, ...), so CI installs it in a side venv
(``.ci/run``: ``--system-site-packages``, so it sees this checkout and torch) and names its python
in ``GASPPROBE_LMMS_PYTHON``; in the main environment the last test then runs this module there. The model is the tiny random Qwen2.5-VL
with a processor laid out like the real checkpoint (video processor, the real chat template from
``/work/shared/real_configs``-style config), since ``gaspprobe model tiny`` saves an image-only one.
lmms-eval's ``generate`` call is intercepted to capture its inputs; nothing is generated.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import types
from pathlib import Path

import numpy as np
import pytest

# Qwen2.5-VL-3B-Instruct's chat template (its chat_template.json), with the default system turn
QWEN25_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL-8B-Instruct's chat template as ../shared/real_configs records it (its chat_template.json)
QWEN3_TEMPLATE = (
    '{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %'
    "}{%- for message in messages %}<|im_start|>{{ message['role'] }}\n{%- if message['content'] is string %"
    "}{{ message['content'] }}{%- else %}{%- for content in message['content'] %"
    "}{%- if content['type'] == 'image' or 'image' in content or 'image_url' in content %"
    '}{%- set image_count.value = image_count.value + 1 %}{%- if add_vision_id %'
    '}Picture {{ image_count.value }}: {% endif -%}<|vision_start|><|image_pad|><|vision_end|>{%'
    "- elif content['type'] == 'video' or 'video' in content %}{%- set video_count.value = video_count.value + 1 %"
    '}{%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}<|vision_start|><|video_pad|><|vision_end|>{%'
    "- elif 'text' in content %}{{ content['text'] }}{%- endif %}{%- endfor %"
    '}{%- endif %}<|im_end|>\n{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%'
    '- endif %}'
)


def _import_torchvision():
    """torchvision (made importable by gaspprobe.models.video where the wheel pair needs it), or skip."""
    import importlib.util

    from gaspprobe.models.video import ensure_torchvision, torchvision_problem

    for m in ("lmms_eval", "qwen_vl_utils", "decord", "torchvision"):
        if importlib.util.find_spec(m) is None:
            pytest.skip(f"{m} is not installed")
    if not ensure_torchvision():
        pytest.skip(torchvision_problem())


def intercept_generate(model, eos: int, captured: dict | None = None) -> dict:
    """Replace ``model.generate`` by a recorder of the inputs a harness hands it (one eos token is
    "generated"); returns the dict the latest call's keyword arguments land in."""
    import torch

    captured = {} if captured is None else captured

    def fake_generate(**kw):
        captured.clear()
        captured.update(kw)
        return torch.cat([kw["input_ids"], torch.full((kw["input_ids"].shape[0], 1), eos)], 1)

    model.generate = fake_generate
    return captured


def noise_video(path: Path, size: tuple[int, int], n: int, fps: float, seed: int) -> Path:
    """An mp4 of ``n`` seeded noise frames (each a little brighter than the last) at ``fps``."""
    from gaspprobe.benchmarking.video import write_video

    rng = np.random.default_rng(seed)
    frames = np.stack([np.clip(rng.normal(128, 60, size + (3,)) + 3 * i, 0, 255).astype(np.uint8) for i in range(n)])
    write_video(path, frames, fps=fps)
    return path


def profile_inputs(profile: str, proc, model, family: str, sample, frames: int | None = 32):
    """What the runner builds for ``sample`` under ``profile``: its loader, then one processor call.
    Returns ``(inputs, loader extras)``."""
    import torch

    from gaspprobe.benchmarking import profiles
    from gaspprobe.benchmarking.runner import visual_loader

    prof = profiles.get(profile)
    model.config.model_type = family
    ad = types.SimpleNamespace(processor=proc, model=model, device=torch.device("cpu"), dtype=torch.float32)
    as_video = prof.wants_video(family, sample.visual)
    vis, extra = visual_loader(prof, family, frames)(sample, as_video=as_video)
    return profiles.build_inputs(ad, [(vis, sample.prompt, as_video, extra)], prof), extra


def video_sample(prompt: str, video: Path):
    from gaspprobe.benchmarking.card import Sample

    return Sample(id="0", question_type="object_counting", kind="na", prompt=prompt, target="2",
                  task="object_counting", visual={"video": str(video)})


def tiny_lmms(arch: str, cls_path: str):
    """lmms-eval's class ``module:Name`` on the tiny ``arch`` model, ``generate`` intercepted:
    ``(lm, processor, captured)``."""
    from transformers import AutoProcessor

    from gaspprobe.models.testing import tiny_model_dir

    mdir = tiny_model_dir(arch)
    proc = AutoProcessor.from_pretrained(mdir)
    mod, name = cls_path.split(":")
    lm = getattr(importlib.import_module(mod), name)(pretrained=str(mdir), device="cpu", device_map="cpu")
    return lm, proc, intercept_generate(lm._model, proc.tokenizer.eos_token_id)


def qwen25_real_layout(mdir: Path) -> Path:
    """The tiny Qwen2.5-VL copied to ``mdir`` with a processor laid out like the real checkpoint's
    (its preprocessor settings for images and videos, its chat template with the default system turn),
    since ``gaspprobe model tiny`` keeps prompts short with a simpler template."""
    from transformers import AutoTokenizer, Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    from gaspprobe.models.testing import tiny_model_dir

    src = tiny_model_dir("qwen2_5_vl")
    shutil.copytree(src, mdir)
    for f in mdir.glob("*processor*json"):
        f.unlink()
    real = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}
    size = {"shortest_edge": 3136, "longest_edge": 12845056}
    Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(size=size, **real),
                        tokenizer=AutoTokenizer.from_pretrained(src),
                        video_processor=Qwen2VLVideoProcessor(size=size, **real),
                        chat_template=QWEN25_TEMPLATE).save_pretrained(mdir)
    return mdir


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    _import_torchvision()
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("lmms")
    mdir = qwen25_real_layout(root / "model")
    tok = AutoTokenizer.from_pretrained(mdir)
    from lmms_eval.models.chat.qwen2_5_vl import Qwen2_5_VL as Chat
    from lmms_eval.models.simple.qwen2_5_vl import Qwen2_5_VL as Simple

    captured: dict = {}
    lms = {}
    for name, cls in (("simple", Simple), ("chat", Chat)):
        lm = cls(pretrained=str(mdir), device="cpu", device_map="cpu")
        intercept_generate(lm._model, tok.eos_token_id, captured)
        lms[name] = lm
    return types.SimpleNamespace(root=root, mdir=mdir, lms=lms, captured=captured, tok=tok)


@pytest.mark.parametrize("cls,profile,sampler", [("simple", "lmms-eval-simple", "qwen_fps2"),
                                                 ("chat", "lmms-eval", "qwen_nframes")])
@pytest.mark.parametrize("size,n,fps", [((224, 224), 48, 12), ((180, 320), 60, 10), ((224, 224), 21, 30)])
def test_lmms_eval_profile_inputs_are_token_identical(setup, size, n, fps, cls, profile, sampler):
    from transformers import AutoProcessor

    video = noise_video(setup.root / f"v{n}" / "scene.mp4", size, n, fps, n)
    prompt = ("These are frames of a video.\nHow many chair(s) are in this room?\n"
              "Please answer the question using a single word or phrase.")
    lm = setup.lms[cls]
    lm.task_dict = {"vsibench": {"test": {0: {"id": 0}}}}
    gen = {"max_new_tokens": 16, "temperature": 0, "until": ["\n\n"]}
    if cls == "simple":
        args = (prompt, gen, lambda d: [str(video)], 0, "vsibench", "test")
    else:  # lmms_eval/tasks/vsibench/utils.py vsibench_doc_to_messages: the video, then the prompt
        msgs = [{"role": "user", "content": [{"type": "video", "url": str(video)}, {"type": "text", "text": prompt}]}]
        args = (prompt, lambda d: msgs, gen, 0, "vsibench", "test")
    lm.generate_until([types.SimpleNamespace(args=args)])
    ref = dict(setup.captured)

    ours, extra = profile_inputs(profile, AutoProcessor.from_pretrained(setup.mdir), lm._model, "qwen2_5_vl",
                                 video_sample(prompt, video))
    _same(ref, ours, video=True)
    assert extra["frame_sampler"] == sampler


@pytest.fixture(scope="module")
def setup3(tmp_path_factory):
    """A tiny Qwen3-VL with the real checkpoint's chat template, and lmms-eval's chat class on it."""
    _import_torchvision()
    from transformers import AutoProcessor

    from gaspprobe.models.testing import tiny_model_dir

    root = tmp_path_factory.mktemp("lmms3")
    src = tiny_model_dir("qwen3_vl")
    mdir = root / "model"
    shutil.copytree(src, mdir)
    proc = AutoProcessor.from_pretrained(src)
    if getattr(proc, "video_processor", None) is None:
        pytest.skip("the tiny Qwen3-VL has no video processor here")
    proc.chat_template = QWEN3_TEMPLATE
    for f in mdir.glob("*processor*json"):
        f.unlink()
    (mdir / "chat_template.jinja").unlink(missing_ok=True)
    proc.save_pretrained(mdir)
    from lmms_eval.models.chat.qwen3_vl import Qwen3_VL

    lm = Qwen3_VL(pretrained=str(mdir), device="cpu", device_map="cpu")
    captured = intercept_generate(lm._model, proc.tokenizer.eos_token_id)
    return types.SimpleNamespace(root=root, mdir=mdir, lm=lm, captured=captured)


@pytest.mark.parametrize("size,n,fps", [((224, 224), 48, 12), ((180, 320), 64, 30)])
def test_lmms_eval_profile_is_token_identical_for_qwen3_vl(setup3, size, n, fps):
    """lmms-eval 0.7.3's chat Qwen3-VL class (``--model qwen3_vl``): 32 frames, patch 16, the
    processor's timestamps from the video metadata, ``do_resize=False``, a system turn."""
    from transformers import AutoProcessor

    video = noise_video(setup3.root / f"v{n}" / "scene.mp4", size, n, fps, n + 1)
    prompt = ("These are frames of a video.\nHow many chair(s) are in this room?\n"
              "Please answer the question using a single word or phrase.")
    lm = setup3.lm
    lm.task_dict = {"vsibench": {"test": {0: {"id": 0}}}}
    msgs = [{"role": "user", "content": [{"type": "video", "url": str(video)}, {"type": "text", "text": prompt}]}]
    gen = {"max_new_tokens": 16, "temperature": 0, "until": ["\n\n"]}
    lm.generate_until([types.SimpleNamespace(args=(prompt, lambda d: [dict(m) for m in msgs], gen, 0, "vsibench",
                                                   "test"))])
    ref = dict(setup3.captured)

    ours, extra = profile_inputs("lmms-eval", AutoProcessor.from_pretrained(setup3.mdir), lm._model, "qwen3_vl",
                                 video_sample(prompt, video))
    _same(ref, ours, video=True)
    assert extra["frame_sampler"] == "qwen_nframes_exact" and len(extra["frame_indices"]) == 32


@pytest.mark.parametrize("size,n,fps", [((224, 224), 64, 12), ((180, 320), 45, 10)])
def test_lmms_eval_profile_is_token_identical_for_internvl_hf(tmp_path, monkeypatch, size, n, fps):
    """lmms-eval 0.7.3's ``internvl_hf`` chat class on a tiny HF-native InternVL: the processor
    samples 32 segment-centre frames itself (``do_sample_frames=True``); the profile decodes those
    frames and hands them over. The class loads the model in bfloat16, so pixels are compared there.
    One substitution: transformers decodes a video path with torchcodec only, which needs system
    FFmpeg libraries this machine lacks; its own PyAV loader stands in (same FFmpeg decode)."""
    _import_torchvision()
    from transformers import video_processing_utils as vpu
    from transformers.video_utils import load_video

    monkeypatch.setattr(vpu.BaseVideoProcessor, "fetch_videos", lambda self, urls, sample_indices_fn=None: (
        list(zip(*[load_video(u, backend="pyav", sample_indices_fn=sample_indices_fn) for u in urls]))
        if isinstance(urls, list) else load_video(urls, backend="pyav", sample_indices_fn=sample_indices_fn)))
    lm, proc, cap = tiny_lmms("internvl", "lmms_eval.models.chat.internvl_hf:InternVLHf")
    if getattr(proc, "video_processor", None) is None:
        pytest.skip("the tiny InternVL has no video processor here")
    video = noise_video(tmp_path / "scene.mp4", size, n, fps, n + 2)
    prompt = "These are frames of a video.\nHow many chair(s) are in this room?"
    lm.task_dict = {"vsibench": {"test": {0: {"id": 0}}}}
    msgs = [{"role": "user", "content": [{"type": "video", "url": str(video)}, {"type": "text", "text": prompt}]}]
    lm.generate_until([types.SimpleNamespace(args=(prompt, lambda d: msgs, {"max_new_tokens": 16, "temperature": 0},
                                                   0, "vsibench", "test"))])
    ref = dict(cap)

    ours, extra = profile_inputs("lmms-eval", proc, lm._model, "internvl", video_sample(prompt, video))
    _same(ref, ours)
    assert extra["frame_sampler"] == "segment_centres" and len(extra["frame_indices"]) == 32


@pytest.fixture
def gemma3_lmms(monkeypatch):
    """lmms-eval's ``gemma3`` class on the tiny Gemma 3, ``generate`` intercepted: ``(lm, processor,
    captured)``. transformers decodes its JPEG data URLs with torchcodec or torchvision's image
    extension, neither of which loads here; PIL (libjpeg-turbo, as both of them) stands in."""
    _import_torchvision()
    import io as _io

    import torch
    import torchvision.io
    from PIL import Image

    def pil_decode(src, mode=None, apply_exif_orientation=False):
        data = bytes(src.numpy().tobytes()) if torch.is_tensor(src) else Path(src).read_bytes()
        with Image.open(_io.BytesIO(data)) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)

    monkeypatch.setattr(torchvision.io, "decode_image", pil_decode)
    return tiny_lmms("gemma3", "lmms_eval.models.simple.gemma3:Gemma3")


@pytest.mark.parametrize("size,n,fps", [((224, 224), 40, 12), ((180, 320), 20, 10)])
def test_lmms_eval_profile_is_token_identical_for_gemma3(tmp_path, gemma3_lmms, size, n, fps):
    """lmms-eval 0.7.3's ``gemma3`` class (simple only) on a tiny Gemma 3: the video's frames
    (PyAV, ``linspace`` over min(n, 32)) each sent as a quality-85 JPEG image, a system turn,
    the chat template tokenized with padding to a multiple of 8, bfloat16 pixels. One
    substitution: transformers decodes the JPEG data URLs with torchcodec or torchvision's image
    extension, neither of which loads here; PIL (libjpeg-turbo, as both of them) stands in."""
    lm, proc, cap = gemma3_lmms
    video = noise_video(tmp_path / "scene.mp4", size, n, fps, n + 3)
    prompt = "These are frames of a video.\nHow many chair(s) are in this room?"
    lm.task_dict = {"vsibench": {"test": {0: {"id": 0}}}}
    lm.generate_until([types.SimpleNamespace(args=(prompt, {"max_new_tokens": 16, "temperature": 0, "until": ["\n\n"]},
                                                   lambda d: [str(video)], 0, "vsibench", "test"))])
    ref = dict(cap)

    ours, extra = profile_inputs("lmms-eval", proc, lm._model, "gemma3", video_sample(prompt, video))
    _same(ref, ours)
    assert len(extra["frame_indices"]) == min(n, 32)


def _blink_images(tmp_path, n: int = 2, hw=(240, 320)) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(len(hw) + n)
    paths = []
    for k in range(n):
        p = tmp_path / f"image_{k + 1}.png"
        Image.fromarray(rng.integers(0, 255, hw + (3,), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def _blink_reference(lm, cls: str, paths: list[str], captured: dict) -> dict:
    """Run one BLINK question through an lmms-eval class: the chat classes with the task's own
    ``blink_doc_to_messages``, the simple ones with ``blink_doc_to_text`` / ``blink_doc_to_visual``."""
    from lmms_eval.tasks.blink import utils as U
    from PIL import Image

    doc = {"idx": "val_Multi-view_Reasoning_1", "sub_task": "Multi-view_Reasoning", "choices": ["left", "right"],
           "answer": "(A)", "question": "Is the camera moving left or right?",
           "prompt": "Is the camera moving left or right?\nSelect from the following choices.\n(A) left\n(B) right",
           **{f"image_{k + 1}": (Image.open(paths[k]) if k < len(paths) else None) for k in range(4)}}
    kw = {"pre_prompt": "Note: You only need to respond with {} without providing any additional information.\n"}
    lm.task_dict = {"blink": {"val": {0: doc}}}
    gen = {"max_new_tokens": 1024}
    if cls == "chat":
        args = ("", lambda d: U.blink_doc_to_messages(d, kw), gen, 0, "blink", "val")
    else:
        args = (U.blink_doc_to_text(doc, kw), gen, U.blink_doc_to_visual, 0, "blink", "val")
    lm.generate_until([types.SimpleNamespace(args=args)])
    return dict(captured)


def _blink_ours(proc, model, family: str, paths: list[str]):
    from gaspprobe.benchmarking.card import Sample, load_card
    from gaspprobe.benchmarking.formats.blink import build_prompt

    card = load_card("blink_multiview")
    prompt = build_prompt("Is the camera moving left or right?\nSelect from the following choices.",
                          ["left", "right"], card.variant(None))
    s = Sample(id="0", question_type="Multi-view_Reasoning", kind="mca", prompt=prompt, target="A", task="mv",
               options={"A": "left", "B": "right"}, visual={"images": paths})
    return profile_inputs("lmms-eval", proc, model, family, s, frames=None)[0]


def _same(ref: dict, ours, video: bool = False) -> None:
    """Every model input the harness built equals ours (pixels compared in the harness's dtype)."""
    import torch

    keys = ["input_ids", "attention_mask", "pixel_values", "image_grid_thw"]
    keys += ["pixel_values_videos", "video_grid_thw", "second_per_grid_ts"] if video else []
    present = [k for k in keys if k in ref]
    assert "input_ids" in present and (not video or "pixel_values_videos" in present), sorted(ref)
    for k in present:
        assert k in ours, k
        assert torch.equal(ref[k], ours[k].to(ref[k].dtype)), k


def test_lmms_eval_profile_blink_images_qwen25_chat(setup, tmp_path):
    """BLINK through the chat Qwen2.5-VL class: images through qwen-vl-utils' fetch_image at its
    default budget, then the processor built with min 256*28*28 / max 1,605,632."""
    from transformers import AutoProcessor

    paths = _blink_images(tmp_path)
    ref = _blink_reference(setup.lms["chat"], "chat", paths, setup.captured)
    _same(ref, _blink_ours(AutoProcessor.from_pretrained(setup.mdir), setup.lms["chat"]._model, "qwen2_5_vl",
                           paths))


def test_lmms_eval_profile_blink_images_qwen3_chat(setup3, tmp_path):
    from transformers import AutoProcessor

    paths = _blink_images(tmp_path, 3, (200, 300))
    ref = _blink_reference(setup3.lm, "chat", paths, setup3.captured)
    _same(ref, _blink_ours(AutoProcessor.from_pretrained(setup3.mdir), setup3.lm._model, "qwen3_vl", paths))


def test_lmms_eval_profile_blink_images_qwen2_vl_simple(tmp_path):
    """Qwen2-VL's only class: every image a quality-85 JPEG data URL, budget 3,136..602,112."""
    _import_torchvision()
    lm, proc, cap = tiny_lmms("qwen2_vl", "lmms_eval.models.simple.qwen2_vl:Qwen2_VL")
    paths = _blink_images(tmp_path)
    ref = _blink_reference(lm, "simple", paths, cap)
    _same(ref, _blink_ours(proc, lm._model, "qwen2_vl", paths))


def test_lmms_eval_profile_blink_images_internvl_hf(tmp_path):
    _import_torchvision()
    lm, proc, cap = tiny_lmms("internvl", "lmms_eval.models.chat.internvl_hf:InternVLHf")
    paths = _blink_images(tmp_path, 2, (300, 600))  # 2:1 views: the processor tiles them
    ref = _blink_reference(lm, "chat", paths, cap)
    _same(ref, _blink_ours(proc, lm._model, "internvl", paths))
    assert ref["pixel_values"].shape[0] > 2


def test_lmms_eval_profile_blink_images_gemma3(tmp_path, gemma3_lmms):
    """Gemma 3: each image a quality-85 JPEG data URL (decoded with PIL here, as in the video case)."""
    lm, proc, cap = gemma3_lmms
    paths = _blink_images(tmp_path)
    ref = _blink_reference(lm, "simple", paths, cap)
    _same(ref, _blink_ours(proc, lm._model, "gemma3", paths))


# card -> (lmms-eval task folder, task yaml, doc_to_text, process_results, fixture, parser the lmms-eval profile uses)
_FIX = Path(__file__).parent / "fixtures" / "bench"
LMMS_TASKS = {
    "blink_depth": ("blink", "_default_template_yaml", "blink_doc_to_text", "blink_process_results",
                    _FIX / "blink" / "Relative_Depth.parquet", "lmms_eval_073_letter"),
    "blink_correspondence": ("blink", "_default_template_yaml", "blink_doc_to_text", "blink_process_results",
                             _FIX / "blink" / "Visual_Correspondence.parquet", "lmms_eval_073_letter"),
    "cvbench_3d": ("cv_bench", "cv_bench_3d.yaml", "cv_bench_doc_to_text", "cv_bench_process_results",
                   _FIX / "cvbench", None),
    "embspatial": ("embspatial", "embspatial.yaml", "embspatial_doc_to_text", "embspatial_process_results",
                   _FIX / "embspatial", None),
    "mmsi": ("mmsi_bench", "msr_bench.yaml", "msr_doc_to_text", "msr_process_results", _FIX / "mmsi", None),
    "threedsr": ("3dsrbench", "3dsrbench.yaml", "doc_to_text", "process_results", _FIX / "threedsr" / "3dsr", None),
    "viewspatial": ("viewspatial", "viewspatial.yaml", "viewspatial_doc_to_text", "viewspatial_process_results",
                    _FIX / "viewspatial", None),
}
REPLIES = ["A", "B", "C", "D", "(B)", "c.", "D) the lamp", "`A`", "``C``", "The answer is B.", "Answer: D",
           "I think (C) is right", "B\nA", "a", "option b", "", "none of these", "3", "2.5 meters", "two",
           "The correct option is (A).", "A, B", "Left", "yes"]


def _task_kwargs(task_dir: str, yml: str):
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    base = Path(importlib.util.find_spec("lmms_eval").origin).parent / "tasks" / task_dir
    d = yaml.load((base / yml).read_text(), Loader=Loader)
    if "lmms_eval_specific_kwargs" not in d and d.get("include"):
        d = {**yaml.load((base / d["include"]).read_text(), Loader=Loader), **d}
    return (d.get("lmms_eval_specific_kwargs") or {}).get("default")


def _as_hf_doc(row: dict) -> dict:
    """A fixture row as ``datasets`` hands it to a task: image structs decoded to PIL."""
    import io as _io

    from PIL import Image

    def dec(v):
        if isinstance(v, dict) and v.get("bytes"):
            return Image.open(_io.BytesIO(v["bytes"]))
        return [dec(x) for x in v] if isinstance(v, list) else v

    return {k: dec(v) for k, v in row.items()}


def _lmms_score(res: dict) -> float:
    for v in res.values():
        if isinstance(v, dict) and "is_correct" in v:
            return float(bool(v["is_correct"]))
        for key in ("score", "accuracy", "MRA:.5:.95:.05", "vci_metric"):  # SPAR: MCA, NA, view change
            if isinstance(v, dict) and key in v:
                return float(v[key] or 0.0)
    raise AssertionError(f"no score among {sorted(res)[:5]}")


@pytest.mark.parametrize("card_name", sorted(LMMS_TASKS))
def test_card_prompts_and_scores_equal_lmms_eval_073(card_name):
    """Each card the ``lmms-eval`` profile covers, on its fixture: lmms-eval 0.7.3's own
    ``doc_to_text`` (with the task yaml's default kwargs) gives our prompt exactly, and its own
    ``process_results`` scores a bank of replies as our parser and metric do, reply by reply."""
    if importlib.util.find_spec("lmms_eval") is None:
        pytest.skip("lmms_eval is not installed")
    from gaspprobe.benchmarking.card import load_card
    from gaspprobe.benchmarking.formats.common import find_file, read_file
    from gaspprobe.benchmarking.registry import LOADERS
    from gaspprobe.benchmarking.scoring import parser_for, score_sample

    task_dir, yml, to_text, process, data, parser = LMMS_TASKS[card_name]
    mod = importlib.import_module(f"lmms_eval.tasks.{task_dir}.utils")
    kw = _task_kwargs(task_dir, yml)
    card = load_card(card_name)
    samples = LOADERS.get(card.format)(card, data)
    rows = read_file(Path(data) if Path(data).is_file() else find_file(data, card))
    assert len(rows) == len(samples)
    parse = parser_for(card, parser)
    for row, s in zip(rows, samples):
        doc = _as_hf_doc(row)
        assert getattr(mod, to_text)(doc, kw) == s.prompt, s.id
        for raw in REPLIES + [s.options.get(s.target, "")]:
            want = _lmms_score(getattr(mod, process)(doc, [raw]))
            got = score_sample(s, raw, parse, card)[1]
            assert got == pytest.approx(want), (card_name, s.id, raw, got, want)


def test_lmms_eval_073_sparbench_scores_every_number_zero():
    """Why the ``lmms-eval`` profile refuses SPAR-Bench: 0.7.3's ``sparbench_process_results``
    evaluates ``partial(mean_relative_accuracy, ...)`` without importing ``partial``, so every
    numeric answer, the exact one included, falls to the worst case 0."""
    if importlib.util.find_spec("lmms_eval") is None:
        pytest.skip("lmms_eval is not installed")
    from lmms_eval.tasks.sparbench import utils as U

    from gaspprobe.benchmarking import profiles
    from gaspprobe.errors import ConfigError

    doc = {"id": 0, "task": "depth_prediction_oc", "answer": "2.4", "img_type": "single-view",
           "format_type": "fill", "source": "scannet", "question": "How far?"}
    assert U.sparbench_process_results(dict(doc), ["2.4"])["sparbench_score"]["MRA:.5:.95:.05"] == 0.0
    assert not hasattr(U, "partial")
    with pytest.raises(ConfigError, match="not defined for sparbench"):
        profiles.get("lmms-eval").check("qwen2_5_vl", "sparbench")


def test_blink_073_parser_agrees_with_lmms_eval_on_a_bank_of_replies():
    """``lmms_eval_073_letter`` against lmms-eval 0.7.3's own BLINK ``_extract_answer_letter``
    (with the question's letters, as its ``blink_process_results`` calls it), reply by reply."""
    if importlib.util.find_spec("lmms_eval") is None:
        pytest.skip("lmms_eval is not installed")
    import itertools

    from lmms_eval.tasks.blink.utils import _extract_answer_letter

    from gaspprobe.benchmarking.card import Sample
    from gaspprobe.benchmarking.formats.blink import lmms_eval_073_letter

    heads = ["", "A", "(B)", "b.", "C)", "D", "The answer is", "answer: ", "Answers are", "I pick", "(A) or",
             "Final answer -", "Bananas", "  (c) ", "answer is (D)"]
    tails = ["", " B", " (C).", "\nA", " because A is closer", ".", " the right one (B)", "\n\nAnswer: C"]
    bank = ["".join(p) for p in itertools.product(heads, tails)]
    for n in (2, 3, 4):
        letters = "ABCD"[:n]
        s = Sample(id="0", question_type="t", kind="mca", prompt="", target="A", task="t",
                   options={k: k for k in letters})
        for raw in bank:
            want = _extract_answer_letter(raw, letters)
            got = lmms_eval_073_letter(raw, s)
            assert (got or "") == want, (raw, letters, got, want)


_SIDE = os.environ.get("GASPPROBE_LMMS_PYTHON", "")


@pytest.mark.skipif(importlib.util.find_spec("lmms_eval") is not None or not _SIDE,
                    reason="lmms-eval imports here (the tests above ran), or no GASPPROBE_LMMS_PYTHON side venv")
def test_identity_runs_in_the_lmms_eval_side_environment():
    """The tests above, run by the side venv's python (where lmms-eval imports): all must pass."""
    import subprocess
    import sys

    env = {**os.environ, "GASPPROBE_LMMS_PYTHON": ""}
    r = subprocess.run([_SIDE, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "-k",
                        "not side_environment", __file__],
                       capture_output=True, text=True, env=env, cwd=str(Path(__file__).resolve().parents[1]))
    tail = (r.stdout + r.stderr)[-3000:]
    assert r.returncode == 0, tail
    assert " passed" in tail and " skipped" not in tail and " failed" not in tail, tail
    assert sys.executable != _SIDE
