"""LLaVA-OneVision adapter (``model_type`` ``llava_onevision``; e.g. ``llava-hf/llava-onevision-qwen2-7b-ov-hf``).

Token layout (transformers ``LlavaOnevisionImageProcessor`` + ``LlavaOnevisionModel.pack_image_features``,
the HF port of LLaVA-NeXT's ``anyres_max_9``):

* **Several images in one sample** (how gaspprobe feeds the frames of a scene, and how OneVision
  itself handles multi-image and video input; the images must be NESTED per sample, which the adapter
  does): each image is padded to a square with the mean colour (centred, ``(M-h)//2``), resized to
  ``S x S`` and gives ``g^2`` tokens, ``g = S//p``, in row-major order followed by ONE ``image_newline``
  token. Token (r, c) covers its patch, ``[c*p, (c+1)*p)`` of the ``S`` view (SigLIP's 27 patches of
  14 px cover 378 of 384 px: the last 6 are seen by no token), i.e. ``[c*p*M/S, (c+1)*p*M/S)`` of the
  padded square, shifted back by the padding, so
  for non-square frames the boxes of the border rows/columns extend past the frame (they cover
  padding); the newline positions are in ``grid.extra["newline"]``.
* **One image in a sample** (a single frame, or ``per_frame=True``): "anyres": a *base* view (the
  frame squashed to ``S x S``; ``g^2`` tokens covering ``g*p`` of its ``S`` px, listed in
  ``grid.extra["base"]``) and then the
  high-resolution view: the best ``image_grid_pinpoints`` canvas (aspect-preserving resize, centred
  zero padding), cut into ``S``-pixel tiles, un-padded (``unpad_image``), bilinearly shrunk when it
  has more than ~9 tiles' worth of tokens, with a newline after every row. The grid is that
  high-resolution view. Its layout is read from the model's own ``pack_image_features`` run on fake
  features whose channels are canvas coordinates, so unpadding and interpolation are exactly the
  model's; canvas -> frame uses the processor's ``get_patch_output_size`` and centred padding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gaspprobe.models.adapter import TokenGrid
from gaspprobe.models.base import BaseAdapter, FamilySpec, _unwrap

_OV_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% elif c['type'] == 'video' %}<video>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _extent(c: torch.Tensor, axis: int, p: int, S: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) canvas-pixel edges of tokens whose centres along ``axis`` are ``c`` [rows, cols].

    Cells the model kept as they are sit at ``tile*S + k*p + p/2`` and span their patch, ``p`` px
    (tiles leave ``S - (S//p)*p`` px at their far edge unseen). Bilinearly shrunk cells are blends:
    they span half-way to the neighbouring centres (the end ones mirror their inner half-step)."""
    k = ((c - p / 2) % S) / p
    if torch.allclose(k, k.round(), atol=1e-6):
        return c - p / 2, c + p / 2
    mid = (c.narrow(axis, 1, c.shape[axis] - 1) + c.narrow(axis, 0, c.shape[axis] - 1)) / 2
    if c.shape[axis] == 1:  # pragma: no cover - one shrunk row: no neighbour to measure against
        return c - p / 2, c + p / 2
    first = 2 * c.narrow(axis, 0, 1) - mid.narrow(axis, 0, 1)
    last = 2 * c.narrow(axis, -1, 1) - mid.narrow(axis, -1, 1)
    return torch.cat([first, mid], axis), torch.cat([mid, last], axis)


class LlavaOnevisionAdapter(BaseAdapter):
    spec = FamilySpec(
        model_type="llava_onevision",
        display_name="LLaVA-OneVision",
        hub_examples=("llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "llava-hf/llava-onevision-qwen2-7b-ov-hf"),
        model_class="LlavaOnevisionForConditionalGeneration",
        processor_class="LlavaOnevisionProcessor",
        image_processor_class="LlavaOnevisionImageProcessorPil",
        patch_size=14, merge_size=1, image_token="<image>",
        processor_kwargs=(("size", {"height": 112, "width": 112}),
                          ("image_grid_pinpoints", [[112 * a, 112 * b] for a in (1, 2) for b in (1, 2)])),
        notes="multi-image: pad to square, SxS, (S/14)^2 tokens + 1 newline each; one image: base + anyres tiles",
        image_only_processor="gaspprobe.models.processors:LlavaOnevisionImageOnlyProcessor",
        projector_keys=("multi_modal_projector", "image_newline"),
        vision_keys=("vision_tower",),
    )

    def _images_arg(self, per_sample):
        return [list(ims) for ims in per_sample]  # nested: several images of one sample = multi-image mode

    def _geometry(self):
        ip = self.processor.image_processor
        size = ip.size
        S = int(size["height"] if isinstance(size, dict) else size.height)
        p = int(self.model.config.vision_config.patch_size)
        return ip, S, p, S // p

    def _grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                      first_image: int) -> TokenGrid:
        H, W = frame_size
        ip, S, p, g = self._geometry()
        pos = (inputs["input_ids"][row] == self.image_token_id).nonzero().squeeze(-1).cpu()
        if n_frames > 1:
            per = g * g + 1
            if pos.numel() != n_frames * per:
                raise ValueError(f"{pos.numel()} image tokens in row {row}, expected {n_frames}x{per}")
            pos = pos.reshape(n_frames, per)
            M = max(H, W)
            offx, offy = (M - W) // 2 if H > W else 0, (M - H) // 2 if W > H else 0
            # the g patches of p px cover g*p <= S px of the S x S view (27*14 = 378 of 384 for the
            # real SigLIP): the last S - g*p px of each side are seen by no token
            span = g * p * M / S
            grid = TokenGrid.regular(n_frames, g, g, (H, W), crop=(-offx, -offy, span - offx, span - offy))
            grid.seq_index = pos[:, :-1].reshape(n_frames, g, g)
            grid.extra["newline"] = pos[:, -1].clone()
            grid.extra["layout"] = "multi_image"
            grid.extra["padded"] = H != W
            return grid
        return self._anyres_grid(inputs, pos, (H, W), first_image)

    def _anyres_grid(self, inputs: Any, pos: torch.Tensor, frame_size: tuple[int, int], image: int) -> TokenGrid:
        from transformers.image_processing_utils import get_patch_output_size, select_best_resolution
        from transformers.image_utils import ChannelDimension
        from transformers.models.llava_onevision.modeling_llava_onevision import get_anyres_image_grid_shape

        H, W = frame_size
        ip, S, p, g = self._geometry()
        cfg = self.model.config
        pins = cfg.image_grid_pinpoints
        nph, npw = get_anyres_image_grid_shape((H, W), pins, S)
        # fake features: channel 0 = kind (0 base, 1 high-res, -1 newline), 1..2 = cell centre (y, x)
        # in canvas pixels (base: in base-view pixels)
        cy = (torch.arange(g, dtype=torch.float64) + 0.5) * p
        tile = torch.stack(torch.broadcast_tensors(torch.zeros(g, g, dtype=torch.float64), cy[:, None], cy[None, :]), -1)
        feats = [tile.reshape(g * g, 3)]
        for ti in range(nph):
            for tj in range(npw):
                t = tile.clone()
                t[..., 0] = 1
                t[..., 1] += ti * S
                t[..., 2] += tj * S
                feats.append(t.reshape(g * g, 3))
        fake = torch.stack(feats)  # [1 + tiles, g*g, 3]
        newline = torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64)
        inner = _unwrap(self.model).model
        packed, _ = inner.pack_image_features([fake], torch.tensor([[H, W]]), image_newline=newline,
                                              vision_aspect_ratio=getattr(cfg, "vision_aspect_ratio", "anyres_max_9"))
        packed = packed[0]
        if packed.shape[0] != pos.numel():
            raise ValueError(f"{pos.numel()} image tokens, the model packs {packed.shape[0]}")
        kind = packed[:, 0].round().long()
        base_pos, hr, nl_pos = pos[kind == 0], packed[kind == 1], pos[kind == -1]
        rows = int(nl_pos.numel())
        cols = int(hr.shape[0] // max(rows, 1))
        hr = hr.reshape(rows, cols, 3)
        yc, xc = hr[..., 1], hr[..., 2]
        # a token's extent in canvas px: its own patch (p px) when the model kept the cells as they
        # are; after a bilinear shrink, half-way to the neighbouring tokens' centres
        ylo, yhi = _extent(yc, 0, p, S)
        xlo, xhi = _extent(xc, 1, p, S)
        hb, wb = select_best_resolution((H, W), pins)
        # processor: aspect-preserving resize to (nh, nw) inside (hb, wb) (its own
        # get_patch_output_size), centred zero padding (divmod: the odd pixel goes after)
        nh, nw = get_patch_output_size(np.empty((1, H, W)), (hb, wb), ChannelDimension.FIRST)
        py, px = (hb - nh) // 2, (wb - nw) // 2
        ky, kx = H / nh, W / nw
        boxes = torch.stack([(xlo - px) * kx, (ylo - py) * ky, (xhi - px) * kx, (yhi - py) * ky], -1).float()[None]
        grid = TokenGrid(boxes=boxes, seq_index=pos[kind == 1].reshape(1, rows, cols), frame_size=(H, W))
        # the base view is the frame squashed to S x S; its g patches cover g*p of the S px
        base = TokenGrid.regular(1, g, g, (H, W), crop=(0.0, 0.0, W * g * p / S, H * g * p / S))
        grid.extra["base"] = {"boxes": base.boxes[0], "seq_index": base_pos.reshape(g, g)}
        grid.extra["newline"] = nl_pos
        grid.extra["layout"] = "anyres"
        grid.extra["padded"] = bool((boxes[..., :2] < 0).any() or (boxes[..., 2] > W).any() or (boxes[..., 3] > H).any())
        return grid

    real_checkpoints = ("llava-hf/llava-onevision-qwen2-7b-ov-hf",)

    video_path = ("video processor: each frame squashed to S x S, the g x g patches bilinearly shrunk to "
                  "ceil(g/2) x ceil(g/2) tokens, one newline after the last frame")

    def _video_grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                            video: int) -> TokenGrid:
        H, W = frame_size
        pv = inputs["pixel_values_videos"]  # [B, T, 3, S, S]: every frame squashed to the tower's size
        T, Sh, Sw = int(pv.shape[1]), int(pv.shape[-2]), int(pv.shape[-1])
        vc = self.model.config.vision_config
        P, g = int(vc.patch_size), int(vc.image_size) // int(vc.patch_size)
        n = -(-g // 2)  # apply_pooling: bilinear (align_corners False) from g x g to ceil(g/2) x ceil(g/2)
        # output cell i samples the patch grid at (i + 0.5) g / n - 0.5: centred on pixel (i + 0.5) g P / n,
        # so the n cells split the g*P px the patches cover evenly (each blends about two patches)
        grid = TokenGrid.regular(T, n, n, (H, W), crop=(0.0, 0.0, W * g * P / Sw, H * g * P / Sh))
        pos = (inputs["input_ids"][row] == self.video_token_id).nonzero().squeeze(-1).cpu()
        if pos.numel() != T * n * n + 1:
            raise ValueError(f"{pos.numel()} video tokens in row {row}, expected {T}x{n}x{n} + 1 newline")
        grid.seq_index = pos[:-1].reshape(T, n, n)
        grid.extra["newline"] = pos[-1:]
        grid.extra["frames"] = torch.arange(T)[:, None]
        grid.extra["pooling"] = "bilinear"
        return grid

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
        # 448x448 frames: multi-image -> 8x8 tokens + newline each; one image -> 8x8 base + 16x16 anyres
        return cls._parts(seed, 112, [[112 * a, 112 * b] for a in (1, 2) for b in (1, 2)])

    @classmethod
    def build_real_parts(cls, checkpoint: str | None = None, seed: int = 0):
        # llava-onevision-qwen2-7b-ov-hf: SigLIP 384 / patch 14 (27x27 = 729 tokens), pinpoints
        # every (a, b) of 384 * 1..6, bicubic, mean/std 0.5, anyres_max_9
        cls._check_real(checkpoint)
        return cls._parts(seed, 384, [[384 * a, 384 * b] for a in range(1, 7) for b in range(1, 7)], resample=3)

    @classmethod
    def _parts(cls, seed: int, S: int, pins: list, **ip_kw):
        from transformers import (
            LlavaOnevisionConfig,
            LlavaOnevisionForConditionalGeneration,
            LlavaOnevisionImageProcessorPil,
        )

        from gaspprobe.models.processors import LlavaOnevisionImageOnlyProcessor
        from gaspprobe.models.tiny import make_tokenizer

        tok = make_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"],
                             eos="<|im_end|>", pad="<|endoftext|>",
                             named={"image_token": "<image>", "video_token": "<video>"})
        P = 14
        cfg = LlavaOnevisionConfig(
            vision_config=dict(model_type="siglip_vision_model", hidden_size=64, intermediate_size=128,
                               num_hidden_layers=2, num_attention_heads=4, image_size=S, patch_size=P),
            text_config=dict(model_type="qwen2", vocab_size=len(tok), hidden_size=128, intermediate_size=256,
                             num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                             bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
            image_token_index=tok.convert_tokens_to_ids("<image>"),
            video_token_index=tok.convert_tokens_to_ids("<video>"),
            image_grid_pinpoints=pins, vision_feature_select_strategy="full", vision_feature_layer=-1,
            vision_aspect_ratio="anyres_max_9",
        )
        torch.manual_seed(seed)
        model = LlavaOnevisionForConditionalGeneration(cfg).eval()
        ip = LlavaOnevisionImageProcessorPil(size={"height": S, "width": S}, image_grid_pinpoints=pins,
                                             image_mean=[0.5] * 3, image_std=[0.5] * 3, **ip_kw)
        kw = dict(tokenizer=tok, num_image_tokens=(S // P) ** 2, vision_feature_select_strategy="full",
                  chat_template=_OV_TEMPLATE)
        from gaspprobe.models.video import ensure_torchvision

        if ensure_torchvision():  # the hub checkpoint's video processor reads preprocessor_config.json
            from transformers import LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor

            vp = LlavaOnevisionVideoProcessor(size={"height": S, "width": S}, image_mean=[0.5] * 3,
                                              image_std=[0.5] * 3, **ip_kw)
            return model, LlavaOnevisionProcessor(image_processor=ip, video_processor=vp, **kw)
        return model, LlavaOnevisionImageOnlyProcessor(image_processor=ip, **kw)
