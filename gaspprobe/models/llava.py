"""LLaVA-1.5 adapter (``model_type`` ``llava``; e.g. ``llava-hf/llava-1.5-7b-hf``).

Token layout (transformers ``LlavaImageProcessor`` + ``LlavaProcessor`` + ``LlavaModel``): each
image is (optionally padded to a square, ``do_pad``, off by default in the HF port) resized so its
SHORTEST edge is ``size`` (the long edge ``int(S*long/short)``), then centre-cropped to
``crop_size`` (336 in the real model); the CLIP tower cuts the crop into ``p``-pixel patches and,
with the "default" feature strategy, drops CLS, so image i is one contiguous run of ``(S/p)^2``
``<image>`` tokens in row-major patch order (576 = 24x24 for the real model), no newlines.
Boxes therefore map back through the crop offset and the resize scale; the parts of a wide (or
tall) frame that the centre crop removes are covered by no token.

Note: the original LLaVA-1.5 code pads images to a square ("pad" aspect mode) instead of the
centre crop; the HF processor's default is the crop. Whichever the loaded processor does
(``do_pad``) is what the grid follows.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gaspprobe.models.adapter import TokenGrid
from gaspprobe.models.base import BaseAdapter, FamilySpec

_LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{% if message['role'] != 'user' %}</s>{% endif %} {% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def _size_hw(size: Any) -> tuple[int | None, int | None, int | None]:
    """(height, width, shortest_edge) of a processor size dict / SizeDict."""
    get = size.get if isinstance(size, dict) else (lambda k, d=None: getattr(size, k, d))
    return get("height", None), get("width", None), get("shortest_edge", None)


def llava_crop_map(H: int, W: int, ip: Any) -> tuple[tuple[float, float], tuple[float, float], tuple[int, int]]:
    """How the LLaVA image processor maps the original frame onto its output crop.

    Returns ``((ax, bx), (ay, by), (ch, cw))`` with ``x_orig = ax * x_crop + bx`` (same for y) in
    edge coordinates, and the crop size. Mirrors ``pad_to_square`` (centred, ``(M-h)//2``),
    ``get_resize_output_image_size(default_to_square=False)`` and numpy ``center_crop``
    (``(h-ch)//2``, zero padding when the crop is larger).
    """
    offx = offy = 0
    Hp, Wp = H, W
    if getattr(ip, "do_pad", False):
        M = max(H, W)
        if W > H:
            offy = (M - H) // 2
        elif H > W:
            offx = (M - W) // 2
        Hp = Wp = M
    nh, nw = Hp, Wp
    if getattr(ip, "do_resize", True):
        h, w, se = _size_hw(ip.size)
        if h and w:
            nh, nw = int(h), int(w)
        elif se:
            short, long = (Wp, Hp) if Wp <= Hp else (Hp, Wp)
            new_short, new_long = int(se), int(int(se) * long / short)
            nh, nw = (new_long, new_short) if Wp <= Hp else (new_short, new_long)
    ch, cw = nh, nw
    padx = pady = cropx = cropy = 0
    if getattr(ip, "do_center_crop", False):
        ch, cw, _ = _size_hw(ip.crop_size)
        ch, cw = int(ch), int(cw)
        eh, ew = max(ch, nh), max(cw, nw)
        pady, padx = math.ceil((eh - nh) / 2), math.ceil((ew - nw) / 2)
        cropy, cropx = (eh - ch) // 2, (ew - cw) // 2
    # x_crop = (x_orig + offx) * nw / Wp + padx - cropx  ->  invert
    ax, ay = Wp / nw, Hp / nh
    bx = (cropx - padx) * ax - offx
    by = (cropy - pady) * ay - offy
    return (ax, bx), (ay, by), (ch, cw)


class LlavaAdapter(BaseAdapter):
    spec = FamilySpec(
        model_type="llava",
        display_name="LLaVA-1.5",
        hub_examples=("llava-hf/llava-1.5-7b-hf", "llava-hf/llava-1.5-13b-hf"),
        model_class="LlavaForConditionalGeneration",
        processor_class="LlavaProcessor",
        image_processor_class="LlavaImageProcessorPil",
        patch_size=14, merge_size=1, image_token="<image>",
        processor_kwargs=(("size", {"shortest_edge": 112}), ("crop_size", {"height": 112, "width": 112})),
        notes="shortest edge -> S, centre crop SxS (cropped sides uncovered), CLS dropped, (S/14)^2 tokens",
    )

    def _grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                      first_image: int) -> TokenGrid:
        H, W = frame_size
        (ax, bx), (ay, by), (ch, cw) = llava_crop_map(H, W, self.processor.image_processor)
        p = int(self.model.config.vision_config.patch_size)
        rows, cols = ch // p, cw // p
        pos = (inputs["input_ids"][row] == self.image_token_id).nonzero().squeeze(-1).cpu()
        if pos.numel() != n_frames * rows * cols:
            raise ValueError(f"{pos.numel()} image tokens in row {row}, expected {n_frames}x{rows}x{cols}")
        xs = torch.arange(cols + 1, dtype=torch.float64) * p * ax + bx
        ys = torch.arange(rows + 1, dtype=torch.float64) * p * ay + by
        grid = TokenGrid.regular(n_frames, rows, cols, (H, W), crop=(xs[0].item(), ys[0].item(),
                                                                    xs[-1].item(), ys[-1].item()))
        grid.seq_index = pos.reshape(n_frames, rows, cols)
        grid.extra["crop"] = (float(xs[0]), float(ys[0]), float(xs[-1]), float(ys[-1]))
        return grid

    real_checkpoints = ("llava-hf/llava-1.5-7b-hf",)

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
        return cls._parts(seed, 112)  # 448x448 -> 112x112 -> 8x8 tokens (real: 336 / 14 = 24x24)

    @classmethod
    def build_real_parts(cls, checkpoint: str | None = None, seed: int = 0):
        # llava-1.5-7b-hf: CLIP-L/14-336 (shortest edge 336, centre crop 336, bicubic, CLIP mean/std)
        cls._check_real(checkpoint)
        return cls._parts(seed, 336, image_mean=[0.48145466, 0.4578275, 0.40821073],
                          image_std=[0.26862954, 0.26130258, 0.27577711], resample=3)

    @classmethod
    def _parts(cls, seed: int, S: int, **ip_kw):
        from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaImageProcessorPil, LlavaProcessor

        from gaspprobe.models.tiny import make_tokenizer

        tok = make_tokenizer(["<s>", "</s>", "<pad>", "<image>"], eos="</s>", pad="<pad>", bos="<s>",
                             named={"image_token": "<image>"})
        P = 14
        cfg = LlavaConfig(
            vision_config=dict(model_type="clip_vision_model", hidden_size=64, intermediate_size=128,
                               num_hidden_layers=3, num_attention_heads=4, image_size=S, patch_size=P,
                               projection_dim=64),
            text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=128, intermediate_size=256,
                             num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id),
            image_token_index=tok.convert_tokens_to_ids("<image>"), image_seq_length=(S // P) ** 2,
            vision_feature_layer=-2, vision_feature_select_strategy="default",
        )
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(cfg).eval()
        ip = LlavaImageProcessorPil(size={"shortest_edge": S}, crop_size={"height": S, "width": S}, **ip_kw)
        proc = LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=P, vision_feature_select_strategy="default",
                              num_additional_image_tokens=1, chat_template=_LLAVA_TEMPLATE)
        return model, proc
