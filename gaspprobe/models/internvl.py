"""InternVL 3 / 3.5 adapter, HF format (``model_type`` ``internvl``; e.g. ``OpenGVLab/InternVL3-8B-hf``).

Token layout (transformers ``GotOcr2ImageProcessor`` + ``InternVLProcessor`` + ``InternVLModel``;
the HF port of InternVL's ``dynamic_preprocess``):

1. ``get_optimal_tiled_canvas``: the (cols, rows) arrangement of ``T``-pixel tiles (448) with
   ``min_patches <= cols*rows <= max_patches`` (1..12) whose aspect is closest to the frame's;
2. the WHOLE frame is resized (squashed, no crop, no padding) to ``cols*T x rows*T`` and cut into
   the tiles, row-major; when there is more than one tile a *thumbnail* (the frame squashed to
   ``T x T``) comes last (``crop_to_patches``, on by default in the processor);
3. each tile: InternViT's ``(T/p)^2`` patches (32 x 32 of 14 px, exactly 448 px) -> pixel shuffle
   by ``downsample_ratio`` 0.5 -> ``n x n`` tokens (16 x 16), row-major, each covering a 2 x 2 block
   of patches.

Text: ``<img>`` + ``<IMG_CONTEXT>`` * 256 * tiles + ``</img>`` per image. So a frame's spatial grid
is ``(rows*n) x (cols*n)`` tokens that tile the frame evenly (steps 1-2 map the full frame onto the
tiles and the patches cover each tile exactly); the thumbnail's tokens are listed in
``grid.extra["thumbnail"]`` (an n x n grid of the whole frame).

Processor: ``InternVLProcessor`` takes a video processor (torchvision); tiny models and hub
checkpoints on machines without torchvision use :class:`InternVLImageOnlyProcessor`.

The tiny model keeps ``OpenGVLab/InternVL3-8B-hf``'s processor and vision geometry (448 px tiles,
patch 14, 1..12 tiles + thumbnail, bicubic, ImageNet mean/std, downsample 0.5, 256 tokens per tile,
``vision_feature_layer`` -1, "default"; the chat template rendering ``<IMG_CONTEXT>\\n`` per image)
with a 64-wide, 2-layer InternViT and Qwen2 language model and random weights.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import InternVLProcessor

from gaspprobe.models.adapter import TokenGrid
from gaspprobe.models.base import BaseAdapter, FamilySpec, _unwrap

# OpenGVLab/InternVL3-8B-hf chat_template.json (the image / video / text parts of a turn)
_INTERNVL_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}{% elif content['type'] == 'text' %}"
    "{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{{'<|im_end|>\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}"
)


class InternVLImageOnlyProcessor(InternVLProcessor):
    """:class:`~transformers.InternVLProcessor` without a video processor (no torchvision needed)."""

    def __init__(self, image_processor=None, tokenizer=None, image_seq_length: int = 256, chat_template=None,
                 **kwargs):
        super().__init__(image_processor, tokenizer, None, image_seq_length=image_seq_length,
                         chat_template=chat_template)


def internvl_tiles(H: int, W: int, ip: Any) -> tuple[int, int]:
    """(tile rows, tile cols) the processor cuts an H x W frame into ((1, 1): one tile, no thumbnail)."""
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

    T = (int(ip.size["height"]), int(ip.size["width"])) if isinstance(ip.size, dict) else (
        int(ip.size.height), int(ip.size.width))
    lo, hi = int(ip.min_patches), int(ip.max_patches)
    if hi <= 1:
        return 1, 1
    cols, rows = get_optimal_tiled_canvas((H, W), T, lo, hi)
    return rows, cols


class InternVLAdapter(BaseAdapter):
    #: the tiny model already keeps this checkpoint's processor and vision geometry
    real_checkpoints = ("OpenGVLab/InternVL3-8B-hf",)

    spec = FamilySpec(
        model_type="internvl",
        display_name="InternVL3",
        hub_examples=("OpenGVLab/InternVL3-8B-hf", "OpenGVLab/InternVL3-1B-hf", "OpenGVLab/InternVL3_5-4B-HF"),
        model_class="InternVLForConditionalGeneration",
        processor_class="InternVLProcessor",
        image_processor_class="GotOcr2ImageProcessorPil",
        patch_size=14, merge_size=2, image_token="<IMG_CONTEXT>",
        processor_kwargs=(("size", {"height": 448, "width": 448}), ("crop_to_patches", True),
                          ("min_patches", 1), ("max_patches", 12)),
        notes="1..12 tiles of 448 at the closest aspect (frame squashed) + thumbnail, shuffle 0.5 -> 16x16 per tile",
        image_only_processor="gaspprobe.models.internvl:InternVLImageOnlyProcessor",
        projector_keys=("multi_modal_projector",),
        vision_keys=("vision_tower",),
    )

    video_path = ("video processor: each frame squashed to 448 x 448 (one tile, no thumbnail), 16 x 16 "
                  "<IMG_CONTEXT> tokens per frame after 'FrameN: <img>'")

    @property
    def video_seq_token_id(self) -> int:
        return self.image_token_id  # InternVL writes each frame of a video as <IMG_CONTEXT> tokens

    def _video_grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                            video: int) -> TokenGrid:
        H, W = frame_size
        vp = self.processor.video_processor
        size = vp.size
        th, tw = (int(size["height"]), int(size["width"])) if isinstance(size, dict) else (int(size.height),
                                                                                          int(size.width))
        vc = _unwrap(self.model).config.vision_config
        ph, pw = (int(x) for x in (vc.patch_size if isinstance(vc.patch_size, (list, tuple)) else
                                   (vc.patch_size, vc.patch_size)))
        r = float(_unwrap(self.model).config.downsample_ratio)
        rows, cols = int(th // ph * r), int(tw // pw * r)  # pixel shuffle: 32 x 32 patches -> 16 x 16 tokens
        pos = (inputs["input_ids"][row] == self.video_seq_token_id).nonzero().squeeze(-1).cpu()
        if pos.numel() != n_frames * rows * cols:
            raise ValueError(f"{pos.numel()} video tokens in row {row}, expected {n_frames}x{rows}x{cols}")
        # the patches cover the 448 px tile exactly, and the tile is the whole frame squashed
        grid = TokenGrid.regular(n_frames, rows, cols, (H, W))
        grid.seq_index = pos.reshape(n_frames, rows, cols)
        grid.extra["frames"] = torch.arange(n_frames)[:, None]
        return grid

    def _grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                      first_image: int) -> TokenGrid:
        H, W = frame_size
        ip = self.processor.image_processor
        cfg = _unwrap(self.model).config
        ps = cfg.vision_config.patch_size
        p = int(ps[0] if isinstance(ps, (list, tuple)) else ps)
        T = int(ip.size["height"] if isinstance(ip.size, dict) else ip.size.height)
        n = int(round(T // p * float(cfg.downsample_ratio)))
        tr, tc = internvl_tiles(H, W, ip)
        seq = n * n
        pos = (inputs["input_ids"][row] == self.image_token_id).nonzero().squeeze(-1).cpu()
        if pos.numel() == n_frames * seq:  # crop_to_patches off (or one tile): the frame squashed to T x T
            tr, tc = 1, 1
        tiles = tr * tc
        per = (tiles + (1 if tiles > 1 else 0)) * seq
        if pos.numel() != n_frames * per:
            raise ValueError(f"{pos.numel()} image tokens in row {row}, expected {n_frames}x{per}")
        if (T // p) * p != T:  # pragma: no cover - every InternVL checkpoint has 448 / 14
            raise ValueError(f"tile size {T} is not a multiple of the patch size {p}")
        pos = pos.reshape(n_frames, per)
        R, C = tr * n, tc * n
        I = torch.arange(R)[:, None]
        J = torch.arange(C)[None, :]
        k = ((I // n) * tc + J // n) * seq + (I % n) * n + (J % n)  # [R, C] index into the tile runs
        grid = TokenGrid.regular(n_frames, R, C, (H, W))
        grid.seq_index = pos[:, k]
        grid.extra["tiles"] = (tr, tc)
        if tiles > 1:
            thumb = TokenGrid.regular(1, n, n, (H, W))
            grid.extra["thumbnail"] = {"boxes": thumb.boxes[0],
                                       "seq_index": pos[:, tiles * seq:].reshape(n_frames, n, n)}
        return grid

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
        from transformers import GotOcr2ImageProcessorPil, InternVLConfig, InternVLForConditionalGeneration

        from gaspprobe.models.tiny import make_tokenizer

        tok = make_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>",
                              "<video>"], eos="<|im_end|>", pad="<|endoftext|>",
                             named={"start_image_token": "<img>", "end_image_token": "</img>",
                                    "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"})
        cfg = InternVLConfig(
            vision_config=dict(model_type="internvl_vision", hidden_size=64, intermediate_size=128,
                               num_hidden_layers=2, num_attention_heads=4, image_size=[448, 448],
                               patch_size=[14, 14], use_absolute_position_embeddings=True, use_mean_pooling=True,
                               norm_type="layer_norm", layer_scale_init_value=0.1, attention_bias=True,
                               use_qk_norm=False),
            text_config=dict(model_type="qwen2", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                             bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
            image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), image_seq_length=256,
            downsample_ratio=0.5, vision_feature_layer=-1, vision_feature_select_strategy="default",
            projector_hidden_act="gelu",
        )
        torch.manual_seed(seed)
        model = InternVLForConditionalGeneration(cfg).eval()
        ip = GotOcr2ImageProcessorPil(size={"height": 448, "width": 448}, crop_to_patches=False, min_patches=1,
                                      max_patches=12, resample=3, image_mean=[0.485, 0.456, 0.406],
                                      image_std=[0.229, 0.224, 0.225])
        from gaspprobe.models.video import family_processor

        # video_preprocessor_config.json of InternVL3-8B-hf
        vkw = dict(size={"height": 448, "width": 448}, resample=3, image_mean=[0.485, 0.456, 0.406],
                   image_std=[0.229, 0.224, 0.225])
        return model, family_processor("InternVLProcessor", InternVLImageOnlyProcessor, "InternVLVideoProcessor", vkw,
                                       image_processor=ip, tokenizer=tok, image_seq_length=256,
                                       chat_template=_INTERNVL_TEMPLATE)
