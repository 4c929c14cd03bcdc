"""Idefics3 adapter (``model_type`` ``idefics3``; e.g. ``HuggingFaceM4/Idefics3-8B-Llama3``).

Token layout (transformers ``Idefics3ImageProcessor`` + ``Idefics3Processor`` + ``Idefics3Connector``):

1. resize so the longest edge is ``size["longest_edge"]`` (4*364 in the real model), aspect kept
   (``_resize_output_size_rescale_to_max_len``: short side ``int()``-truncated, rounded up to even);
2. ``resize_for_vision_encoder``: both sides rounded UP to multiples of the tile size
   ``T = max_image_size["longest_edge"]`` (364) - a slight squash, no crop, no padding;
3. split into ``rows x cols`` tiles of ``T x T`` (row-major) plus one *global* view (the whole
   frame squashed to ``T x T``) last; a frame that fits in one tile is not split (just one view);
4. each tile: ``(T/p)^2`` patches -> pixel shuffle by ``scale_factor`` s -> ``n x n`` tokens,
   ``n = T/(p*s)``, row-major (``pixel_shuffle`` keeps raster order of s x s patch blocks).

Text: per tile ``<fake_token_around_image><row_i_col_j>`` + ``<image>``*n*n, a ``\\n`` after each
tile row, then ``\\n<fake_token_around_image><global-img>`` + ``<image>``*n*n + ``<fake...>``.
So a frame's spatial grid is ``(rows*n) x (cols*n)`` tokens assembled from its tiles' token runs
(steps 1-2 map the full frame onto the tiles). A token's box is the pixels its ``s x s`` patches
really cover: ``n*s*p`` px of each ``T``-px tile (Idefics3-8B: 13*2*14 = 364, the whole tile;
SmolVLM: 9*3*14 = 378 of 384, so the last 6 px of every tile are seen by no token), mapped back
through the resize. The global view's tokens are listed in ``grid.extra["global"]`` (an n x n
grid over the frame squashed to ``T x T``, same rule).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gaspprobe.models.adapter import TokenGrid
from gaspprobe.models.base import BaseAdapter, FamilySpec

_IDEFICS3_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def idefics3_tiles(H: int, W: int, longest_edge: int, tile: int, splitting: bool = True) -> tuple[int, int]:
    """(tile rows, tile cols) the Idefics3 image processor cuts an H x W frame into (0, 0: not split)."""
    from transformers.models.idefics3.image_processing_pil_idefics3 import get_resize_output_image_size

    if not splitting:
        return 0, 0
    h, w = get_resize_output_image_size(torch.empty(1, H, W), resolution_max_side=longest_edge)
    aspect = w / h
    if w >= h:
        w = math.ceil(w / tile) * tile
        h = math.ceil(int(w / aspect) / tile) * tile
    else:
        h = math.ceil(h / tile) * tile
        w = math.ceil(int(h * aspect) / tile) * tile
    if h > tile or w > tile:
        return (h - tile) // tile + 1, (w - tile) // tile + 1
    return 0, 0


class Idefics3Adapter(BaseAdapter):
    spec = FamilySpec(
        model_type="idefics3",
        display_name="Idefics3",
        hub_examples=("HuggingFaceM4/Idefics3-8B-Llama3",),
        model_class="Idefics3ForConditionalGeneration",
        processor_class="Idefics3Processor",
        image_processor_class="Idefics3ImageProcessorPil",
        patch_size=14, merge_size=2, image_token="<image>",
        layers_path="model.text_model.layers",
        language_model_path="model.text_model",
        projector_keys=("connector",),
        vision_keys=("vision_model",),
        processor_kwargs=(("size", {"longest_edge": 224}), ("max_image_size", {"longest_edge": 112})),
        notes="longest edge -> L, tiles of T (rows x cols) + global view, pixel shuffle 2 -> (T/28)^2 tokens per tile",
    )

    def _images_arg(self, per_sample):
        return [list(ims) for ims in per_sample]

    def _grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                      first_image: int) -> TokenGrid:
        H, W = frame_size
        ip = self.processor.image_processor
        T = int(ip.max_image_size["longest_edge"])
        le = int(ip.size["longest_edge"] if isinstance(ip.size, dict) else ip.size.longest_edge)
        tr, tc = idefics3_tiles(H, W, le, T, bool(ip.do_image_splitting))
        cfg = self.model.config
        n = T // (int(cfg.vision_config.patch_size) * int(cfg.scale_factor))
        seq = n * n
        tiles = tr * tc
        per = (tiles + 1) * seq if tiles else seq
        pos = (inputs["input_ids"][row] == self.image_token_id).nonzero().squeeze(-1).cpu()
        if pos.numel() != n_frames * per:
            raise ValueError(f"{pos.numel()} image tokens in row {row}, expected {n_frames}x{per}")
        pos = pos.reshape(n_frames, per)
        # a token is s x s patches of p px; the (T//p)//s tokens of a tile side cover n*s*p <= T px
        # of it (SmolVLM: 9*3*14 = 378 of 384; the rest of each tile is seen by no token)
        span = n * int(cfg.scale_factor) * int(cfg.vision_config.patch_size)
        if not tiles:  # one T x T view of the whole frame
            grid = TokenGrid.regular(n_frames, n, n, (H, W), crop=(0.0, 0.0, W * span / T, H * span / T))
            grid.seq_index = pos.reshape(n_frames, n, n)
            return grid
        R, C = tr * n, tc * n
        I = torch.arange(R)[:, None]
        J = torch.arange(C)[None, :]
        k = ((I // n) * tc + J // n) * seq + (I % n) * n + (J % n)  # [R, C] index into the tile runs
        # steps 1-2 map the whole frame onto the (tr*T) x (tc*T) image the tiles are cut from
        step = span / n
        x0 = (J // n) * T + (J % n) * step
        y0 = (I // n) * T + (I % n) * step
        sx, sy = W / (tc * T), H / (tr * T)
        boxes = torch.stack(torch.broadcast_tensors(x0 * sx, y0 * sy, (x0 + step) * sx, (y0 + step) * sy), -1)
        grid = TokenGrid(boxes=boxes.double()[None].expand(n_frames, R, C, 4).float().clone(),
                         seq_index=pos[:, k], frame_size=(H, W))
        glob = TokenGrid.regular(1, n, n, (H, W), crop=(0.0, 0.0, W * span / T, H * span / T))
        grid.extra["global"] = {"boxes": glob.boxes[0], "seq_index": pos[:, tiles * seq:].reshape(n_frames, n, n)}
        grid.extra["tiles"] = (tr, tc)
        return grid

    real_checkpoints = ("HuggingFaceM4/Idefics3-8B-Llama3", "HuggingFaceTB/SmolVLM-Instruct")

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
        # 448x448 -> longest edge 224 -> 2x2 tiles of 112 (+ global) -> 8x8 tokens per frame
        # (tile 112 -> 8x8 patches -> pixel shuffle 2 -> 4x4 tokens per tile)
        return cls._parts(seed, 112, 2, 224)

    @classmethod
    def build_real_parts(cls, checkpoint: str | None = None, seed: int = 0):
        # Idefics3-8B-Llama3: tiles of 364 (26x26 patches of 14, shuffle 2 -> 13x13 = 169 tokens), longest
        # edge 4*364; SmolVLM-Instruct (model_type idefics3): tiles of 384 (27x27 patches, shuffle 3 ->
        # 9x9 = 81 tokens covering 378 px), longest edge 4*384. Both bilinear (resample 1), mean/std 0.5.
        which = cls._check_real(checkpoint)
        T, s = (384, 3) if which == "HuggingFaceTB/SmolVLM-Instruct" else (364, 2)
        return cls._parts(seed, T, s, 4 * T, resample=1, image_mean=[0.5] * 3, image_std=[0.5] * 3)

    @classmethod
    def _parts(cls, seed: int, T: int, s: int, L: int, **ip_kw):
        from transformers import (
            Idefics3Config,
            Idefics3ForConditionalGeneration,
            Idefics3ImageProcessorPil,
            Idefics3Processor,
        )

        from gaspprobe.models.tiny import make_tokenizer

        rowcol = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
        tok = make_tokenizer(["<|begin_of_text|>", "<|end_of_text|>", "<pad>", "<image>", "<fake_token_around_image>",
                              "<global-img>", "<end_of_utterance>", *rowcol],
                             eos="<end_of_utterance>", pad="<pad>", bos="<|begin_of_text|>",
                             named={"image_token": "<image>"})
        P = 14
        cfg = Idefics3Config(
            vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                               image_size=T, patch_size=P),
            text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=128, intermediate_size=256,
                             num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id),
            scale_factor=s, image_token_id=tok.convert_tokens_to_ids("<image>"),
            pad_token_id=tok.pad_token_id,
        )
        torch.manual_seed(seed)
        model = Idefics3ForConditionalGeneration(cfg).eval()
        ip = Idefics3ImageProcessorPil(size={"longest_edge": L}, max_image_size={"longest_edge": T}, **ip_kw)
        proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=(T // (P * s)) ** 2,
                                 chat_template=_IDEFICS3_TEMPLATE)
        return model, proc
