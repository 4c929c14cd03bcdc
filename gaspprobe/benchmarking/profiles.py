"""Harness profiles: how a model is fed and scored, as each evaluation harness does it.

The same model and benchmark differ by up to ~5 points between harnesses (EASI
docs/Benchmark_Verification.md: Qwen2.5-VL-7B on VSI-Bench 33.50 official code, 33.70 VLMEvalKit,
38.67 lmms-eval), so a number means little without the profile that made it. Every summary
records ``profile``; ``gaspprobe bench compare`` shows profiles side by side.

==========  ==============================================================================
gaspprobe   (default; the historical numbers) the adapter's own ``generate``: frames as a list
            of images, the family's chat template without a system prompt, the card's prompt
            and parser, ``np.linspace(0, n-1, k)`` frames.
lmms-eval   lmms-eval 0.7.3 as ``--model <name>`` runs it: the chat class where the name has one
            (its registry prefers chat unless ``--force_simple``). Qwen2.5-VL
            (``models/chat/qwen2_5_vl.py``): the VSI video as a *video*, no system turn of its own,
            pixel budget min 256*28*28 / max 1,605,632 with qwen-vl-utils' resize, ``nframes =
            max(2, even(min(32, n)))`` decoded at ``round(linspace)``, the video's metadata to the
            processor, answers neither cut nor stripped. Qwen3-VL (``chat/qwen3_vl.py``): the same
            with a system turn, exactly 32 frames, patch 16 and ``do_resize=False``. InternVL
            (``chat/internvl_hf.py``): the processor's 32 segment-centre frames. Gemma 3
            (``simple/gemma3.py``): frames as quality-85 JPEG images, a system turn, padding to a
            multiple of 8. Qwen2-VL (``simple/qwen2_vl.py``): system string, min 3,136 / max
            602,112, qwen-vl-utils' 2 fps then ``np.unique(np.linspace)``, cut at a blank line and
            stripped. Families without a working lmms-eval video class are refused.
lmms-eval-simple  ``--force_simple``: ``models/simple/qwen2_5_vl.py`` (system string, 2 fps decode
            then ``np.unique(np.linspace)`` to k with the last decoded frame, no fps to the
            processor so transformers assumes 24, cut at ``<|im_end|>``, not stripped).
vlmevalkit  VLMEvalKit (open-compass/VLMEvalKit@e8e78f05): ``Qwen2VLChat`` for Qwen2.5-VL, a
            ``VIDEO_LLM``: VSI-Bench as the mp4 through qwen-vl-utils (``nframes`` 32,
            round-linspace),
            All-Angles views through qwen-vl-utils' ``fetch_image``; ``vlmeval/config.py``'s budget
            min 1280*28*28 / max 16384*28*28 to qwen-vl-utils only; no system prompt, no fps; the NA
            post-prompt "Answer briefly and directly in one float number."; its option matching then
            the first number. Gemma 3 (``vlm/gemma.py``): the dataset's quality-75 JPEG frames as
            images, a system turn. Other families are refused with the reason (crash upstream, no
            class, sampling decoding, or a class not reproduced here).
official    the benchmark's released code: VSI-Bench = thinking-in-space (its lmms-eval fork:
            video path where the family has one, linspace frames, first-token scorer);
            All-Angles = the authors' VLMEvalKit fork (images, can_infer matching).
==========  ==============================================================================

A profile unknown for a family (or for a card) is a :class:`~gaspprobe.errors.ConfigError`
(exit 2). Adding a profile is one :class:`Profile` plus one ``PROFILES.register`` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from gaspprobe.errors import ConfigError, DataError
from gaspprobe.registry import Registry

QWEN_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


@dataclass(frozen=True)
class Profile:
    """How one harness feeds a model and scores its output.

    ``visual``: "images" (each frame an image message) or "video" (one video message where the
    family has a video path; images otherwise). ``sampler``: "linspace" (``np.linspace(0, n-1, k,
    dtype=int)``), "linspace_last" (lmms-eval Qwen: the same, last frame appended when missing) or
    "uniform_tail" (VLMEvalKit: k uniform frames plus the last). ``pixels``: per family
    ``(min_pixels, max_pixels)`` (None: the processor's own). ``jpeg``: per family, how many JPEG
    save/read round trips the frames go through (PIL, ``jpeg_quality``; 75 is PIL's default), as
    VLMEvalKit's saved frames do. ``pad_to_multiple_of``: per family, the processor call's padding.
    ``strip`` / ``stop``: per family, strip answers / cut them at these strings after decoding.
    ``parser``: per card format the scorer's parser (None: the card's default). ``prompt``: per card
    format prompt-variant overrides. ``families``: the model families the profile knows (empty:
    all); ``refused``: families it refuses, with the reason (the harness has no class for them).
    ``video_metadata``: families whose processor gets the decoded video's metadata (fps, frame
    indices, frame count; transformers derives seconds per grid from it). ``qwen_resize``: per
    family the patch size qwen-vl-utils resizes its video frames for before the processor sees
    them. ``no_resize``: families whose processor call gets ``do_resize=False``.
    ``processor_budget``: the harness builds its processor with ``pixels`` too (lmms-eval:
    ``AutoProcessor.from_pretrained(..., min_pixels, max_pixels)``); False: the checkpoint's own.
    ``qwen_image_pixels``: per family the budget qwen-vl-utils' ``fetch_image`` resizes images to
    (default: ``pixels``). ``jpeg_images``: the ``jpeg`` round trips apply to a benchmark's images
    too, not only to frames decoded from a video. ``images_kwargs``: per family, extra processor
    image arguments the harness passes.
    """

    name: str
    description: str
    visual: str = "images"
    sampler: dict[str, str] = field(default_factory=lambda: {"*": "linspace"})
    system: dict[str, str | None] = field(default_factory=dict)
    pixels: dict[str, tuple[int, int]] = field(default_factory=dict)
    parser: dict[str, str] = field(default_factory=dict)
    prompt: dict[str, dict] = field(default_factory=dict)
    video_families: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    stop: dict[str, tuple[str, ...]] = field(default_factory=dict)
    formats: tuple[str, ...] = ()
    uses_adapter_generate: bool = False
    jpeg: dict[str, int] = field(default_factory=dict)
    jpeg_quality: int = 75
    pad_to_multiple_of: dict[str, int] = field(default_factory=dict)
    strip: dict[str, bool] = field(default_factory=dict)
    video_metadata: tuple[str, ...] = ()
    qwen_resize: dict[str, int] = field(default_factory=dict)
    no_resize: tuple[str, ...] = ()
    processor_budget: bool = True
    qwen_image_pixels: dict[str, tuple[int, int]] = field(default_factory=dict)
    jpeg_images: bool = False
    images_kwargs: dict[str, dict] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def stop_for(self, family: str | None) -> tuple[str, ...]:
        """Stop strings cut from a decoded answer for a family (``"*"``: the default)."""
        return tuple(self.stop.get(family or "", self.stop.get("*", ())))

    def strip_for(self, family: str | None) -> bool:
        """Whether answers are stripped for a family (``"*"``: the default, True)."""
        return bool(self.strip.get(family or "", self.strip.get("*", True)))

    def jpeg_passes(self, family: str | None) -> int:
        """JPEG save/read round trips the frames go through for a family (``"*"``: the default)."""
        return int(self.jpeg.get(family or "", self.jpeg.get("*", 0)))

    def sampler_for(self, family: str | None) -> str:
        """The frame sampler this profile uses for a family (``"*"``: the default)."""
        return self.sampler.get(family or "", self.sampler.get("*", "linspace"))

    def check(self, family: str | None, card_format: str) -> None:
        """ConfigError unless this profile is defined for the family and the card's format."""
        if self.formats and card_format not in self.formats:
            raise ConfigError(f"profile {self.name!r} is not defined for {card_format} benchmarks "
                              f"(defined for: {', '.join(self.formats)})")
        if family is not None and family in self.refused:
            raise ConfigError(f"profile {self.name!r} is not defined for model family {family!r}: "
                              f"{self.refused[family]}")
        if family is not None and self.families and family not in self.families:
            raise ConfigError(f"profile {self.name!r} is not defined for model family {family!r} "
                              f"(defined for: {', '.join(self.families)})")

    def system_prompt(self, family: str | None) -> str | None:
        return self.system.get(family or "", self.system.get("*"))

    def wants_video(self, family: str | None, sample_visual: dict) -> bool:
        return self.visual == "video" and "video" in sample_visual and (family in self.video_families)


LMMS_SYSTEM = "You are a helpful assistant."
LMMS_QWEN_PIXELS = (256 * 28 * 28, 1605632)  # qwen2_5_vl.py / qwen3_vl.py defaults
LMMS_QWEN2_PIXELS = (3136, 602112)  # qwen2_vl.py defaults
# what lmms-eval 0.7.3 has no class for (registry and model classes read; docs/benchmarks.md)
LMMS_NO_CLASS = {
    "llava_next_video": "lmms-eval 0.7.3 has no Hugging Face class for LLaVA-NeXT-Video (llava_hf maps llava, "
                        "llava_next and llava_onevision only)",
    "smolvlm": "lmms-eval 0.7.3 has no class for SmolVLM/Idefics3 (idefics2.py loads Idefics2 only)",
    "idefics3": "lmms-eval 0.7.3 has no class for Idefics3 (idefics2.py loads Idefics2 only)",
    "glm4v": "lmms-eval 0.7.3's glm4v.py cannot take a video (it sends the path as an image URL)",
    "llava": "lmms-eval 0.7.3's llava_hf hands the video to LLaVA-1.5's processor, which has no video path",
}
LMMS_NOT_YET = ("its lmms-eval class is not reproduced by gaspprobe yet (docs/benchmarks.md lists what is); "
                "use the 'gaspprobe' profile")
LMMS_OV_CHAT = ("lmms-eval 0.7.3's llava_hf chat class (what --model llava_hf runs) passes images=[] beside the "
                "video, which LLaVA-OneVision's image processor rejects (IndexError, transformers 5.24): that harness "
                "gives no answer to reproduce")

PROFILES: Registry[Profile] = Registry("profile")
PROFILES.register("gaspprobe", Profile(
    name="gaspprobe", description="the adapter's own generate: frames as images, no system prompt, card defaults",
    uses_adapter_generate=True))
PROFILES.register("lmms-eval", Profile(
    name="lmms-eval", description="lmms-eval 0.7.3 as `--model <name>` runs it: the chat class where the name "
    "has one (qwen2_5_vl, qwen3_vl, internvl_hf), else the simple class (qwen2_vl, gemma3)",
    visual="video", sampler={"qwen2_vl": "qwen_fps2", "qwen2_5_vl": "qwen_nframes", "qwen3_vl": "qwen_nframes_exact",
                             "internvl": "segment_centres", "gemma3": "linspace_capped"},
    # chat qwen2_5_vl adds no system turn (the checkpoint's template adds its default); chat qwen3_vl adds one
    system={"qwen2_vl": LMMS_SYSTEM, "qwen3_vl": LMMS_SYSTEM, "gemma3": LMMS_SYSTEM},
    # simple/gemma3.py and simple/qwen2_vl.py send every image (and gemma3 every frame) as a quality-85 JPEG
    # data URL; gemma3 pads to a multiple of 8
    jpeg={"gemma3": 1, "qwen2_vl": 1}, jpeg_quality=85, jpeg_images=True, pad_to_multiple_of={"gemma3": 8},
    # images through qwen-vl-utils' fetch_image: the chat classes give it no budget (its defaults), then the
    # processor built with the class's budget resizes again (Qwen3-VL: do_resize=False)
    qwen_image_pixels={"qwen2_vl": LMMS_QWEN2_PIXELS, "qwen2_5_vl": (4 * 28 * 28, 16384 * 28 * 28),
                       "qwen3_vl": (4 * 32 * 32, 16384 * 32 * 32)},
    images_kwargs={"internvl": {"min_patches": 1, "max_patches": 12}},
    pixels={"qwen2_vl": LMMS_QWEN2_PIXELS, "qwen2_5_vl": LMMS_QWEN_PIXELS, "qwen3_vl": LMMS_QWEN_PIXELS},
    parser={"vsibench": "lmms_eval_lenient", "blink": "lmms_eval_073_letter"},
    video_families=QWEN_FAMILIES + ("internvl",), families=QWEN_FAMILIES + ("internvl", "gemma3"),
    refused={**LMMS_NO_CLASS, "llava_onevision": LMMS_OV_CHAT},
    video_metadata=("qwen2_5_vl", "qwen3_vl"), qwen_resize={"qwen2_vl": 14, "qwen2_5_vl": 14, "qwen3_vl": 16},
    no_resize=("qwen3_vl",),
    # cards whose lmms-eval 0.7.3 prompt and scoring equal ours (checked against its task code) and whose
    # doc_to_messages put the images before the text; not: SPAR (0.7.3 scores every number 0: its
    # METRICS_FOR_NA eval lacks functools.partial), MindCube and SITE (images interleaved in the text)
    formats=("vsibench", "blink", "cvbench", "embspatial", "mmsi", "threedsr", "viewspatial"),
    # qwen2_vl.py cuts at every "until" string (VSI: "\n\n") then strips; the chat class does neither
    stop={"qwen2_vl": ("\n\n",)}, strip={"*": False, "qwen2_vl": True}))
PROFILES.register("lmms-eval-simple", Profile(
    name="lmms-eval-simple", description="lmms-eval 0.7.3 with --force_simple: the simple classes "
    "(models/simple/qwen2_5_vl.py, qwen2_vl.py)",
    visual="video", sampler={"qwen2_vl": "qwen_fps2", "qwen2_5_vl": "qwen_fps2"},
    system={"qwen2_vl": LMMS_SYSTEM, "qwen2_5_vl": LMMS_SYSTEM},
    pixels={"qwen2_vl": LMMS_QWEN2_PIXELS, "qwen2_5_vl": LMMS_QWEN_PIXELS},
    parser={"vsibench": "lmms_eval_lenient"},
    video_families=("qwen2_vl", "qwen2_5_vl"), families=("qwen2_vl", "qwen2_5_vl"),
    refused={**LMMS_NO_CLASS, **{f: LMMS_NOT_YET for f in ("qwen3_vl", "llava_onevision", "internvl", "gemma3")}},
    qwen_resize={"qwen2_vl": 14, "qwen2_5_vl": 14},
    formats=("vsibench",),
    # qwen2_5_vl.py drops "\n\n" from until and cuts at the rest (eos is skipped when decoding)
    stop={"qwen2_vl": ("\n\n",), "qwen2_5_vl": ("<|im_end|>",)}, strip={"*": False, "qwen2_vl": True}))
VLMK_NOT_YET = ("VLMEvalKit's class for it is not reproduced by gaspprobe yet (docs/benchmarks.md lists what is); "
                "use the 'gaspprobe' profile")
PROFILES.register("vlmevalkit", Profile(
    name="vlmevalkit", description="VLMEvalKit (open-compass/VLMEvalKit@e8e78f05): Qwen2VLChat for Qwen2.5-VL "
    "(VSI as a video through qwen-vl-utils, images through it too), Gemma3 (saved JPEG frames), its VSI prompt "
    "and matching",
    visual="video", video_families=("qwen2_5_vl",), families=("qwen2_5_vl", "gemma3"),
    # VSI-Bench_<n>frame: Qwen2VLChat asks qwen-vl-utils for nframes = n (the frame count floored to even
    # when shorter), which decodes round(linspace); image models would get the dataset's floor-linspace
    # JPEG frames (PIL quality 75: one save/read round trip of frames decoded from the video)
    sampler={"*": "uniform_tail", "qwen2_5_vl": "qwen_nframes"}, jpeg={"*": 1},
    # vlmeval/config.py's Qwen2.5-VL entries; no system prompt; no fps reaches the processor
    pixels={"qwen2_5_vl": (1280 * 28 * 28, 16384 * 28 * 28)}, qwen_resize={"qwen2_5_vl": 14},
    # vlm/gemma.py: a system turn (trailing space included); frames and views as image files
    system={"gemma3": "You are a helpful assistant. "},
    parser={"vsibench": "vlmevalkit_then_first_token", "allangles": "vlmevalkit_can_infer"},
    prompt={"vsibench": {"na_post_prompt": "Answer briefly and directly in one float number."}},
    refused={
        "qwen2_vl": "VLMEvalKit's Qwen2-VL entries crash on VSI-Bench (Qwen2VLPromptMixin.build_prompt gets an "
                    "unexpected 'video_llm' argument): that harness gives no answer to reproduce",
        "llava_onevision": "VLMEvalKit's LLaVA_OneVision_HF fails on transformers 5.24 ('Found 1 <image> tokens "
                           "in the text but no images were passed'): no answer to reproduce",
        "llava_next_video": "VLMEvalKit has no LLaVA-NeXT-Video class",
        "qwen3_vl": "VLMEvalKit's Qwen3-VL entries run vLLM with sampling (temperature 0.7): not reproducible "
                    "token for token",
        **{f: VLMK_NOT_YET for f in ("internvl", "smolvlm", "idefics3", "glm4v", "llava", "llava_next",
                                     "paligemma")}},
    formats=("vsibench", "allangles"), strip={"*": False}, processor_budget=False))
PROFILES.register("official", Profile(
    name="official", description="the benchmark's released code (VSI-Bench: thinking-in-space; All-Angles: "
    "the authors' VLMEvalKit fork)",
    visual="video",
    parser={"vsibench": "vsibench_first_token", "allangles": "vlmevalkit_can_infer"},
    video_families=("llava_onevision",) + QWEN_FAMILIES,
    formats=("vsibench", "allangles")))

DEFAULT = "gaspprobe"


def get(name: str | None) -> Profile:
    """The profile registered as ``name`` (None: the default); ConfigError when unknown."""
    name = name or DEFAULT
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; known: {', '.join(PROFILES.names())}")
    return PROFILES.get(name)


def family_of(model: Any) -> str | None:
    """The HF ``model_type`` of an adapter (None for objects without a model config)."""
    cfg = getattr(getattr(model, "model", None), "config", None)
    return getattr(cfg, "model_type", None)


# --------------------------------------------------------------------------- frame sampling
def qwen_fps_frames(n: int, video_fps: float, fps: float = 2.0, min_frames: int = 4,
                    max_frames: int = 768) -> np.ndarray:
    """The frames qwen-vl-utils decodes from a video of ``n`` frames at ``video_fps`` (its
    ``smart_nframes`` + ``torch.linspace(0, n-1, nframes).round()``): ``n / video_fps * fps``
    frames, at least ``min_frames`` (rounded up to even), at most ``min(max_frames, n)``, floored
    to an even count."""
    import math

    lo = math.ceil(min_frames / 2) * 2
    hi = math.floor(min(max_frames, n) / 2) * 2
    want = n / video_fps * fps
    m = math.floor(min(min(max(want, lo), hi), n) / 2) * 2
    if not 2 <= m <= n:
        raise ValueError(f"qwen_fps_frames: a video of {n} frames is too short (needs >= 2)")
    return _qwen_utils_indices(n, m)


def _qwen_utils_indices(n: int, m: int) -> np.ndarray:
    """The ``m`` frames of an ``n``-frame video qwen-vl-utils decodes: ``round(linspace(0, n-1, m))``."""
    import torch

    return torch.linspace(0, n - 1, m).round().long().numpy()


def sample_indices(n: int, k: int, sampler: str, video_fps: float | None = None) -> np.ndarray:
    """Frame indices of a video of ``n`` frames (``video_fps`` frames per second).

    - ``linspace``: ``np.linspace(0, n-1, k, dtype=int)`` (lmms-eval's ``load_video``; official).
    - ``uniform_tail``: VLMEvalKit's default: the same, then ``n-1`` appended when it is not the
      last index already (with ``np.linspace`` it always is, so k frames).
    - ``qwen_fps2``: lmms-eval 0.7.3's simple Qwen classes: the frames qwen-vl-utils decodes
      (:func:`qwen_fps_frames`, 2 fps), then ``np.unique(np.linspace(0, m-1, k, dtype=int))`` of
      those with the last decoded frame appended when missing (so at most min(m, k + 1) frames).
    - ``qwen_nframes``: lmms-eval 0.7.3's chat Qwen2.5-VL class: ``nframes = max(2, min(k, n)
      floored to even)`` asked of qwen-vl-utils, which decodes ``torch.linspace(0, n-1,
      nframes).round()``.
    - ``qwen_nframes_exact``: its chat Qwen3-VL class: ``nframes = k`` rounded to even, not capped
      by the video's length (qwen-vl-utils refuses a video shorter than that; so do we).
    - ``segment_centres``: transformers' InternVL video processor (``initial_shift=True``), what
      lmms-eval's ``internvl_hf`` asks for: ``torch.arange(n/k/2, n, n/k).int()``; a video shorter
      than k frames is refused, as the processor does.
    - ``linspace_capped``: lmms-eval's ``read_video`` (PyAV): ``np.linspace(0, n-1, min(n, k),
      dtype=int)``.
    - ``all``: every frame (lmms-eval classes that hand the video path to a processor which does
      not sample frames).
    """
    if n < 1 or k < 1:
        raise ValueError(f"sample_indices: n and k must be positive, got {n}, {k}")
    if sampler == "linspace":
        return np.linspace(0, n - 1, k, dtype=int)
    if sampler == "linspace_capped":  # lmms-eval read_video: min(n, k) frames
        return np.linspace(0, n - 1, min(n, k), dtype=int)
    if sampler == "uniform_tail":
        idx = np.linspace(0, n - 1, k, dtype=int)
        return idx if idx[-1] == n - 1 else np.append(idx, n - 1)
    if sampler == "qwen_fps2":
        dec = qwen_fps_frames(n, float(video_fps or 24.0))
        sub = np.unique(np.linspace(0, len(dec) - 1, k, dtype=int))  # 0.7.3 drops repeats
        if len(dec) - 1 not in sub:
            sub = np.unique(np.append(sub, len(dec) - 1))
        return dec[sub]
    if sampler in ("qwen_nframes", "qwen_nframes_exact"):
        m = max(2, (min(k, n) // 2) * 2) if sampler == "qwen_nframes" else max(2, 2 * round(k / 2))
        if m > n:  # qwen-vl-utils raises here too, so lmms-eval gets no answer for this video
            raise DataError(f"the video has {n} frames, fewer than the {m} that lmms-eval's class asks "
                            "qwen-vl-utils for")
        return _qwen_utils_indices(n, m)
    if sampler == "segment_centres":
        import torch

        if k > n:
            raise DataError(f"the video has {n} frames, fewer than the {k} the InternVL video processor samples")
        return torch.arange(n / k / 2, n, n / k).int().numpy()
    if sampler == "all":
        return np.arange(n)
    raise ConfigError(f"unknown frame sampler {sampler!r}")


def qwen_decoded(n: int, k: int, sampler: str, video_fps: float | None) -> int:
    """How many frames qwen-vl-utils decoded for a sampler (its per-frame pixel cap depends on it)."""
    if sampler == "qwen_fps2":
        return len(qwen_fps_frames(n, float(video_fps or 24.0)))
    return len(sample_indices(n, k, sampler, video_fps))


def qwen_video_resize(frames: np.ndarray, decoded: int, min_pixels: int, max_pixels: int,
                      patch: int = 14) -> np.ndarray:
    """Resize video frames as qwen-vl-utils ``fetch_video`` does before the processor sees them.

    With ``f = 2 * patch`` (28 for Qwen2/2.5-VL, 32 for Qwen3-VL's ``image_patch_size=16``), the
    per-frame cap is ``max(min(768*f*f, 128000*f*f*0.9 / decoded * 2), 1.05 * min_pixels)`` with
    ``decoded`` the number of frames it decoded (before lmms-eval subsamples them), then
    ``smart_resize`` (transformers' Qwen2-VL rule, factor f) and a bicubic, antialiased resize of
    the uint8 frames rounded back to uint8 (torchvision's ``resize`` on a uint8 tensor; written with
    ``torch.nn.functional.interpolate``, which gives the same values, so torchvision is not needed).
    Returns uint8 [F, h, w, 3]."""
    import torch

    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    F_, H, W = frames.shape[:3]
    f = 2 * int(patch)
    total = 128000 * f * f * 0.9  # qwen-vl-utils' MODEL_SEQ_LEN budget
    cap = max(min(768 * f * f, total / max(decoded, 1) * 2), int(min_pixels * 1.05))
    h, w = smart_resize(H, W, factor=f, min_pixels=min_pixels, max_pixels=int(min(max_pixels, cap)))
    if (h, w) == (H, W):
        return frames
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    y = torch.nn.functional.interpolate(t, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def qwen_image_resize(image: Any, min_pixels: int, max_pixels: int, patch: int = 14) -> Any:
    """A PIL image resized as qwen-vl-utils ``fetch_image`` does (RGB, transformers' Qwen2-VL
    ``smart_resize`` with factor ``2 * patch``, PIL's default ``resize`` filter), which is what
    harnesses feeding Qwen through qwen-vl-utils hand the processor."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    im = image.convert("RGB")
    h, w = smart_resize(im.height, im.width, factor=2 * int(patch), min_pixels=min_pixels, max_pixels=max_pixels)
    return im if (h, w) == (im.height, im.width) else im.resize((w, h))


def jpeg_roundtrip(frames: Sequence[np.ndarray], quality: int = 75) -> list[np.ndarray]:
    """Frames saved as JPEG with PIL (``quality``; 75 is its default) and read back (VLMEvalKit
    feeds saved frames; lmms-eval's Gemma 3 class sends each frame as a quality-85 JPEG)."""
    import io as _io

    from PIL import Image

    out = []
    for f in frames:
        buf = _io.BytesIO()
        Image.fromarray(np.asarray(f)).convert("RGB").save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as im:
            out.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    return out


# --------------------------------------------------------------------------- inputs
def _messages(n_images: int, prompt: str, system: str | None, video: bool = False) -> list[dict]:
    content: list[dict] = [{"type": "video"}] if video else [{"type": "image"} for _ in range(n_images)]
    if prompt:
        content.append({"type": "text", "text": prompt})
    msgs = [{"role": "user", "content": content}]
    if system:  # a plain string, as lmms-eval writes it
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def _to_device(adapter: Any, inputs: Any) -> Any:
    dt = getattr(adapter, "dtype", None)
    dev = getattr(adapter, "device", "cpu")
    if dt is not None and dt.is_floating_point and hasattr(inputs, "data") and any(
            getattr(v, "is_floating_point", lambda: False)() for v in inputs.data.values()):
        return inputs.to(device=dev, dtype=dt)  # BatchFeature: floats (pixels) to the model's dtype
    return inputs.to(dev)


def text_inputs(adapter: Any, prompts: Sequence[str], *, system: str | None = None,
                add_generation_prompt: bool = True) -> Any:
    """Processor inputs of prompts with no image or video at all (the blind baseline)."""
    proc = adapter.processor
    texts = [proc.apply_chat_template(_messages(0, p, system), add_generation_prompt=add_generation_prompt,
                                      tokenize=False) for p in prompts]
    tok = getattr(proc, "tokenizer", proc)
    return _to_device(adapter, tok(texts, return_tensors="pt", padding=True, add_special_tokens=False))


def build_inputs(adapter: Any, items: Sequence[tuple], profile: Profile, *,
                 add_generation_prompt: bool = True) -> Any:
    """ONE processor call for a batch of ``(frames uint8 [F,H,W,3], prompt, as_video[, meta])``
    samples under ``profile`` (system prompt, pixel budget, video or images). ``meta`` (the
    loader's ``frame_indices``, ``video_frames``, ``video_fps``) becomes the video's metadata for
    families in ``profile.video_metadata``."""
    from PIL import Image

    from gaspprobe.models.base import as_frames

    fam = family_of(adapter)
    system = profile.system_prompt(fam)
    proc = adapter.processor
    texts, images, videos, metas = [], [], [], []
    for i, (frames, prompt, as_video, *rest) in enumerate(items):
        arr = as_frames(frames, what=f"sample {i} frames")
        texts.append(proc.apply_chat_template(_messages(len(arr), prompt, system, video=as_video),
                                              add_generation_prompt=add_generation_prompt, tokenize=False))
        if as_video:
            videos.append(arr)
            meta = rest[0] if rest else {}
            metas.append({"fps": meta.get("video_fps"), "frames_indices": list(meta.get("frame_indices") or []),
                          "total_num_frames": meta.get("video_frames")})
        else:
            images.append([Image.fromarray(f) for f in arr])
    kw: dict[str, Any] = {}
    pix = profile.pixels.get(fam or "")
    qwen_utils = fam in profile.qwen_resize  # qwen-vl-utils resizes first; the processor keeps its own size
    if images:
        qpix = profile.qwen_image_pixels.get(fam or "", pix)
        if qwen_utils and qpix:
            images = [[qwen_image_resize(im, *qpix, patch=profile.qwen_resize[fam]) for im in ims] for ims in images]
        imgs = images if fam == "llava_onevision" else [im for ims in images for im in ims]
        kw["images"] = imgs
        ik = dict(profile.images_kwargs.get(fam or "", {}))
        if pix and profile.processor_budget:
            ik["size"] = {"shortest_edge": pix[0], "longest_edge": pix[1]}
        if ik:
            kw["images_kwargs"] = ik
    if videos:
        if getattr(proc, "video_processor", None) is None:
            raise ConfigError(f"profile {profile.name!r} feeds videos through the processor's video path, and "
                              f"this {fam} processor has none (real checkpoints have one; it needs torchvision)")
        kw["videos"] = videos
        if fam in profile.video_metadata:
            bad = [m for m in metas if not m["fps"] or not m["frames_indices"] or not m["total_num_frames"]]
            if bad:
                raise ConfigError(f"profile {profile.name!r} passes each video's metadata, and a video came "
                                  "without its frame rate / frame indices")
            kw["video_metadata"] = metas
        vk: dict[str, Any] = {"do_sample_frames": False}
        if pix and profile.processor_budget:
            vk["size"] = {"shortest_edge": pix[0], "longest_edge": pix[1]}
        kw["videos_kwargs"] = vk
    if fam in profile.no_resize:
        kw["do_resize"] = False
    if fam in profile.pad_to_multiple_of:
        kw["pad_to_multiple_of"] = int(profile.pad_to_multiple_of[fam])
    inputs = proc(text=texts, return_tensors="pt", padding=True, **kw)
    return _to_device(adapter, inputs)


def decode_new(adapter: Any, out: Any, n_in: int, stop: Sequence[str] = (), strip: bool = True) -> list[str]:
    """New tokens decoded (special tokens skipped), each cut at the first stop string, stripped
    unless ``strip=False`` (lmms-eval neither strips nor cleans up tokenization spaces)."""
    tok = getattr(adapter.processor, "tokenizer", adapter.processor)
    kw = {} if strip else {"clean_up_tokenization_spaces": False}
    texts = tok.batch_decode(out[:, n_in:], skip_special_tokens=True, **kw)
    res = []
    for t in texts:
        for s in stop:
            if s and s in t:
                t = t.split(s)[0]
        res.append(t.strip() if strip else t)
    return res


def generate_inputs(adapter: Any, inputs: Any, *, max_new_tokens: int, stop: Sequence[str] = (),
                    strip: bool = True) -> list[str]:
    """Greedy generation from processor inputs."""
    import torch

    tok = getattr(adapter.processor, "tokenizer", adapter.processor)
    with torch.inference_mode():
        out = adapter.model.generate(**inputs, max_new_tokens=int(max_new_tokens), do_sample=False,
                                     pad_token_id=tok.pad_token_id)
    return decode_new(adapter, out, inputs["input_ids"].shape[1], stop, strip)


def has_processor(model: Any) -> bool:
    return getattr(model, "processor", None) is not None and getattr(model, "model", None) is not None


def blind_generate(model: Any, prompts: Sequence[str], *, max_new_tokens: int = 16,
                   system: str | None = None, stop: Sequence[str] = (), strip: bool = True) -> list[str]:
    """The model's answers to the prompts with no image or video (real adapters: text-only
    processor inputs; other objects: ``generate`` with empty frame lists)."""
    if not prompts:
        return []
    if not has_processor(model):
        return list(model.generate([([], p) for p in prompts], max_new_tokens=max_new_tokens))
    return generate_inputs(model, text_inputs(model, prompts, system=system), max_new_tokens=max_new_tokens,
                           stop=stop, strip=strip)
