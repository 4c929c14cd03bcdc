"""Qwen-VL family adapters: Qwen2-VL, Qwen2.5-VL, Qwen3-VL.

Token layout (transformers ``Qwen2VLImageProcessor`` / ``Qwen2VLProcessor``; the official
``qwen-vl-utils`` ``smart_resize`` is the same rule): each image is resized, keeping its aspect
approximately and with NO crop, to (h, w) multiples of ``patch*merge`` (28 for Qwen2/2.5, 32 for
Qwen3) with ``min_pixels <= h*w <= max_pixels``; ``patchify`` orders patches in 2x2 blocks and the
merger fuses each block into ONE LLM token. So image i contributes ``(h/28) x (w/28)`` tokens in
row-major order, one contiguous run of ``<|image_pad|>`` between ``<|vision_start|>`` and
``<|vision_end|>``, no newline tokens. Since the resize maps the whole frame onto (h, w), token
(r, c) covers the box ``[c*W/cols, (c+1)*W/cols) x [r*H/rows, (r+1)*H/rows)`` of the original frame.
Qwen2.5-VL's window-attention permutation is undone inside the vision tower (output order is the
patchify order); Qwen3-VL's deepstack features are added inside the first decoder layers, so
``vision`` (the LLM input) excludes them, as it should.

Verified by marker tests (``tests/test_models_grid.py``) on the tiny models.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from gaspprobe.models.adapter import TokenGrid
from gaspprobe.models.base import BaseAdapter, FamilySpec

# A 448x448 frame -> 224x224 -> 8x8 tokens (max_pixels = 224*224): small grids, fast on CPU.
_TINY_MAX_PIXELS = 224 * 224
_TINY_PIXELS = {"shortest_edge": 56 * 56, "longest_edge": _TINY_MAX_PIXELS}
# Real Qwen2-VL / Qwen2.5-VL preprocessor_config.json: min_pixels 3136, max_pixels 12845056, CLIP mean/std
_REAL_PIXELS_14 = {"shortest_edge": 3136, "longest_edge": 12845056}
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# The hub template's rendering of a user turn (images, videos, text; no default system prompt, so
# tiny prompts stay short), video branch included as in the real one.
_QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]


def _qwen_tokenizer():
    from gaspprobe.models.tiny import make_tokenizer

    return make_tokenizer(_QWEN_SPECIALS, eos="<|im_end|>", pad="<|endoftext|>",
                          named={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})


def _video_processor(name: str, pixels: dict, patch_size: int, **kw):
    """The family's transformers video processor at ``pixels`` (None where torchvision cannot import)."""
    from gaspprobe.models.video import ensure_torchvision

    if not ensure_torchvision():
        return None
    import transformers

    return getattr(transformers, name)(size=dict(pixels), patch_size=patch_size, merge_size=2, temporal_patch_size=2,
                                       **kw)


def _special_ids(tok) -> dict[str, int]:
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in {
        "image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>",
        "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>"}.items()}
    return ids


class QwenVLAdapter(BaseAdapter):
    """Shared Qwen-VL logic: flat image list, regular grid per image from ``image_grid_thw``."""

    video_path = ("video processor: smart_resize as images (the video processor's own pixel budget), "
                  "2 frames per temporal patch (an odd count repeats the last frame), 2x2 merge")

    def _videos_kwargs(self, videos):
        # transformers' default through v5.21, made explicit (it warns otherwise): no qwen-vl-utils
        # per-frame pixel cap; the bench's lmms-eval profile applies that cap itself
        return {**super()._videos_kwargs(videos), "cap_pixels_per_frame": False}

    def _video_grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                            video: int) -> TokenGrid:
        return self._thw_video_grid(inputs, row, frame_size, n_frames, video)

    def _grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                      first_image: int) -> TokenGrid:
        H, W = frame_size
        merge = int(self.processor.image_processor.merge_size)
        thw = inputs["image_grid_thw"][first_image:first_image + n_frames].tolist()
        pos = (inputs["input_ids"][row] == self.image_token_id).nonzero().squeeze(-1).cpu()
        t, gh, gw = thw[0]
        if any(tuple(x) != (t, gh, gw) for x in thw) or t != 1:  # pragma: no cover - same-size frames
            raise ValueError(f"unexpected image_grid_thw {thw}")
        rows, cols = gh // merge, gw // merge
        if pos.numel() != n_frames * rows * cols:
            raise ValueError(f"{pos.numel()} image tokens in row {row}, expected {n_frames}x{rows}x{cols}")
        grid = TokenGrid.regular(n_frames, rows, cols, (H, W))
        grid.seq_index = pos.reshape(n_frames, rows, cols)
        grid.extra["resized"] = (gh * self.processor.image_processor.patch_size,
                                 gw * self.processor.image_processor.patch_size)
        return grid


class _Qwen2FamilyAdapter(QwenVLAdapter):
    """Qwen2-VL and Qwen2.5-VL: the same processor geometry (14-px patches, 2x2 merge) and tiny
    builder; only the transformers classes and the vision config differ (class attributes)."""

    _hf: tuple[str, str, str] = ("", "", "")     # (config class, model class, image-only processor class)

    _vision: dict[str, Any] = {}

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
        return cls._parts(seed, _TINY_PIXELS)

    @classmethod
    def build_real_parts(cls, checkpoint: str | None = None, seed: int = 0):
        cls._check_real(checkpoint)
        return cls._parts(seed, _REAL_PIXELS_14, image_mean=_CLIP_MEAN, image_std=_CLIP_STD)

    @classmethod
    def _parts(cls, seed: int, pixels: dict, **ip_kw):
        import transformers
        from transformers import Qwen2VLImageProcessorPil

        from gaspprobe.models import processors

        config_cls, model_cls = getattr(transformers, cls._hf[0]), getattr(transformers, cls._hf[1])
        tok = _qwen_tokenizer()
        cfg = config_cls(
            text_config=dict(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                             num_attention_heads=4, num_key_value_heads=2,
                             rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 6, 6]},
                             bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
            vision_config=dict(cls._vision),
            **_special_ids(tok),
        )
        torch.manual_seed(seed)
        model = model_cls(cfg).eval()
        ip = Qwen2VLImageProcessorPil(size=dict(pixels), patch_size=14, merge_size=2, temporal_patch_size=2, **ip_kw)
        # the real checkpoints have no video_preprocessor_config.json: their video processor reads
        # preprocessor_config.json, so it has the image processor's pixel budget, mean and std
        vp = _video_processor("Qwen2VLVideoProcessor", pixels, patch_size=14, **ip_kw)
        if vp is not None:
            full = getattr(transformers, cls._hf[2].replace("ImageOnly", ""))
            return model, full(image_processor=ip, tokenizer=tok, video_processor=vp, chat_template=_QWEN_TEMPLATE)
        proc = getattr(processors, cls._hf[2])
        return model, proc(image_processor=ip, tokenizer=tok, chat_template=_QWEN_TEMPLATE)


class Qwen2_5_VLAdapter(_Qwen2FamilyAdapter):
    spec = FamilySpec(
        model_type="qwen2_5_vl",
        display_name="Qwen2.5-VL",
        hub_examples=("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"),
        model_class="Qwen2_5_VLForConditionalGeneration",
        processor_class="Qwen2_5_VLProcessor",
        image_processor_class="Qwen2VLImageProcessorPil",
        patch_size=14, merge_size=2, image_token="<|image_pad|>",
        processor_kwargs=(("min_pixels", 56 * 56), ("max_pixels", _TINY_MAX_PIXELS)),
        notes="smart_resize (no crop) to multiples of 28, 2x2 merge, one token run per image",
        image_only_processor="gaspprobe.models.processors:Qwen2_5_VLImageOnlyProcessor",
        language_model_path="model.language_model",
        projector_keys=("visual.merger", "visual.deepstack_merger"),
        vision_keys=("visual.",),
    )
    real_checkpoints = ("Qwen/Qwen2.5-VL-7B-Instruct",)
    _hf = ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLImageOnlyProcessor")
    _vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2, window_size=112, out_hidden_size=128,
                   fullatt_block_indexes=[1])


class Qwen2VLAdapter(_Qwen2FamilyAdapter):
    spec = dataclasses.replace(
        Qwen2_5_VLAdapter.spec, model_type="qwen2_vl", display_name="Qwen2-VL",
        hub_examples=("Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-7B-Instruct"),
        model_class="Qwen2VLForConditionalGeneration", processor_class="Qwen2VLProcessor",
        image_only_processor="gaspprobe.models.processors:Qwen2VLImageOnlyProcessor",
    )
    real_checkpoints = ("Qwen/Qwen2-VL-7B-Instruct",)
    _hf = ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration", "Qwen2VLImageOnlyProcessor")
    _vision = dict(depth=2, embed_dim=64, hidden_size=128, mlp_ratio=2, num_heads=4, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2)


class Qwen3VLAdapter(QwenVLAdapter):
    spec = FamilySpec(
        model_type="qwen3_vl",
        display_name="Qwen3-VL",
        hub_examples=("Qwen/Qwen3-VL-4B-Instruct", "Qwen/Qwen3-VL-8B-Instruct"),
        model_class="Qwen3VLForConditionalGeneration",
        processor_class="Qwen3VLProcessor",
        image_processor_class="Qwen2VLImageProcessorPil",
        patch_size=16, merge_size=2, image_token="<|image_pad|>",
        processor_kwargs=(("min_pixels", 64 * 64), ("max_pixels", 256 * 256)),
        notes="smart_resize (no crop) to multiples of 32, 2x2 merge, deepstack added in early layers",
        image_only_processor="gaspprobe.models.processors:Qwen3VLImageOnlyProcessor",
        language_model_path="model.language_model",
        projector_keys=("visual.merger", "visual.deepstack_merger"),
        vision_keys=("visual.",),
    )

    real_checkpoints = ("Qwen/Qwen3-VL-8B-Instruct",)

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
        # 448x448 -> 256x256 -> 8x8 tokens of 32 px
        return cls._parts(seed, {"shortest_edge": 64 * 64, "longest_edge": 256 * 256}, 64)

    @classmethod
    def build_real_parts(cls, checkpoint: str | None = None, seed: int = 0):
        # Qwen3-VL-8B-Instruct preprocessor_config.json; 2304 = 48x48 learned position embeddings
        cls._check_real(checkpoint)
        return cls._parts(seed, {"shortest_edge": 65536, "longest_edge": 16777216}, 2304)

    @classmethod
    def _parts(cls, seed: int, pixels: dict, n_pos: int):
        from transformers import Qwen2VLImageProcessorPil, Qwen3VLConfig, Qwen3VLForConditionalGeneration

        from gaspprobe.models.processors import Qwen3VLImageOnlyProcessor

        tok = _qwen_tokenizer()
        cfg = Qwen3VLConfig(
            text_config=dict(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                             rope_parameters={"rope_type": "default", "rope_theta": 5e6,
                                              "mrope_section": [4, 6, 6], "mrope_interleaved": True},
                             bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
            vision_config=dict(depth=3, hidden_size=64, intermediate_size=128, num_heads=4, patch_size=16,
                               spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=128,
                               num_position_embeddings=n_pos, deepstack_visual_indexes=[0, 1]),
            **_special_ids(tok),
        )
        torch.manual_seed(seed)
        model = Qwen3VLForConditionalGeneration(cfg).eval()
        ip = Qwen2VLImageProcessorPil(size=dict(pixels),
                                      patch_size=16, merge_size=2, temporal_patch_size=2,
                                      image_mean=[0.5] * 3, image_std=[0.5] * 3)
        vp = _video_processor("Qwen3VLVideoProcessor", pixels, patch_size=16, image_mean=[0.5] * 3,
                              image_std=[0.5] * 3)
        if vp is not None:
            from transformers import Qwen3VLProcessor

            return model, Qwen3VLProcessor(image_processor=ip, tokenizer=tok, video_processor=vp,
                                           chat_template=_QWEN_TEMPLATE)
        return model, Qwen3VLImageOnlyProcessor(image_processor=ip, tokenizer=tok, chat_template=_QWEN_TEMPLATE)
