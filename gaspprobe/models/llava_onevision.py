"""LLaVA-OneVision adapter (``model_type`` ``llava_onevision``; e.g. ``llava-hf/llava-onevision-qwen2-7b-ov-hf``).

Token layout (transformers ``LlavaOnevisionImageProcessor`` + ``LlavaOnevisionModel.pack_image_features``,
the HF port of LLaVA-NeXT's ``anyres_max_9``):

* **Several images in one sample** (how gaspprobe feeds the frames of a scene, and how OneVision
  itself handles multi-image and video input; the images must be NESTED per sample, which the adapter
  does): each image is padded to a square with the mean colour (centred, ``(M-h)//2``), resized to
  ``S x S`` and gives ``(S/p)^2`` tokens in row-major order followed by ONE ``image_newline`` token.
  Token (r, c) covers ``[c*M/g, (c+1)*M/g)`` of the padded square, shifted back by the padding, so
  for non-square frames the boxes of the border rows/columns extend past the frame (they cover
  padding); the newline positions are in ``grid.extra["newline"]``.
* **One image in a sample** (a single frame, or ``per_frame=True``): "anyres": a *base* view (the
  frame squashed to ``S x S``; ``(S/p)^2`` tokens, listed in ``grid.extra["base"]``) and then the
  high-resolution view: the best ``image_grid_pinpoints`` canvas (aspect-preserving resize, centred
  zero padding), cut into ``S``-pixel tiles, un-padded (``unpad_image``), bilinearly shrunk when it
  has more than ~9 tiles' worth of tokens, with a newline after every row. The grid is that
  high-resolution view. Its layout is read from the model's own ``pack_image_features`` run on fake
  features whose channels are canvas coordinates, so unpadding and interpolation are exactly the
  model's; canvas -> frame uses the processor's ``get_patch_output_size`` and centred padding.
"""

from __future__ import annotations

from typing import Any

import torch

from gaspprobe.models.adapter import TokenGrid
from gaspprobe.models.base import BaseAdapter, FamilySpec, _unwrap

_OV_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


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
            grid = TokenGrid.regular(n_frames, g, g, (H, W), crop=(-offx, -offy, M - offx, M - offy))
            grid.seq_index = pos[:, :-1].reshape(n_frames, g, g)
            grid.extra["newline"] = pos[:, -1].clone()
            grid.extra["layout"] = "multi_image"
            grid.extra["padded"] = H != W
            return grid
        return self._anyres_grid(inputs, pos, (H, W), first_image)

    def _anyres_grid(self, inputs: Any, pos: torch.Tensor, frame_size: tuple[int, int], image: int) -> TokenGrid:
        from transformers.image_processing_utils import select_best_resolution
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
        # cell size in canvas px: the spacing of centres (bilinear shrink keeps them evenly spaced)
        sy = float(hr[1, 0, 1] - hr[0, 0, 1]) if rows > 1 else float(p)
        sx = float(hr[0, 1, 2] - hr[0, 0, 2]) if cols > 1 else float(p)
        hb, wb = select_best_resolution((H, W), pins)
        # processor: aspect-preserving resize to (nh, nw) inside (hb, wb), centred zero padding
        sw, sh = wb / W, hb / H
        if sw < sh:
            nw, nh = wb, min(-(-H * sw // 1), hb)
        else:
            nh, nw = hb, min(-(-W * sh // 1), wb)
        nh, nw = int(nh), int(nw)
        py, px = (hb - nh) // 2, (wb - nw) // 2
        ky, kx = H / nh, W / nw
        yc, xc = hr[..., 1], hr[..., 2]
        boxes = torch.stack([(xc - sx / 2 - px) * kx, (yc - sy / 2 - py) * ky,
                             (xc + sx / 2 - px) * kx, (yc + sy / 2 - py) * ky], -1).float()[None]
        grid = TokenGrid(boxes=boxes, seq_index=pos[kind == 1].reshape(1, rows, cols), frame_size=(H, W))
        base = TokenGrid.regular(1, g, g, (H, W))  # the base view is the frame squashed to S x S
        grid.extra["base"] = {"boxes": base.boxes[0], "seq_index": base_pos.reshape(g, g)}
        grid.extra["newline"] = nl_pos
        grid.extra["layout"] = "anyres"
        grid.extra["padded"] = bool((boxes[..., :2] < 0).any() or (boxes[..., 2] > W).any() or (boxes[..., 3] > H).any())
        return grid

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
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
        # 448x448 frames: multi-image -> 8x8 tokens + newline each; one image -> 8x8 base + 16x16 anyres
        # (real: S 384, p 14 -> 27x27, pinpoints up to 2304)
        S, P = 112, 14
        pins = [[S * a, S * b] for a in (1, 2) for b in (1, 2)]
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
                                             image_mean=[0.5] * 3, image_std=[0.5] * 3)
        proc = LlavaOnevisionImageOnlyProcessor(image_processor=ip, tokenizer=tok, num_image_tokens=(S // P) ** 2,
                                                vision_feature_select_strategy="full", chat_template=_OV_TEMPLATE)
        return model, proc
