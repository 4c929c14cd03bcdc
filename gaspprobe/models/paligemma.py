"""PaliGemma / PaliGemma 2 adapter (``model_type`` ``paligemma``; e.g. ``google/paligemma2-3b-pt-224``).

Token layout (transformers ``SiglipImageProcessor`` + ``PaliGemmaProcessor`` + ``PaliGemmaModel``):
each frame is squashed (no crop, no padding) to ``S x S`` (224, 448 or 896 by checkpoint); SigLIP
cuts it into ``(S/p)^2`` patches of 14 px (16 x 16 at 224, exactly 224 px) and the linear projector
keeps one token per patch, row-major. So token (r, c) covers
``[c*W/g, (c+1)*W/g) x [r*H/g, (r+1)*H/g)`` of the original frame.

Prompt: PaliGemma has no chat template (the ``pt`` checkpoints are prefix-LM models): the adapter
writes ``<image>`` once per frame, then the prompt; the processor expands each ``<image>`` to
``image_seq_length`` tokens and adds ``<bos>`` before the prompt and ``\\n`` after it
(big_vision's prefix format). The whole prefix (images and prompt, ``token_type_ids`` 0) attends
bidirectionally, as in the real model; the processor's backward-compatibility ``labels`` are
dropped (gaspprobe builds its own losses).

The tiny model keeps ``google/paligemma2-3b-pt-224``'s processor and vision geometry (224 px,
patch 14, 256 tokens, bicubic, mean/std 0.5; Gemma-2 text with its logit soft-capping) with
64-wide, 2-layer towers and random weights; the processor adds the 1024 ``<locXXXX>`` and 128
``<segXXX>`` tokens itself, as for the real tokenizer.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from gaspprobe.models.adapter import TokenGrid
from gaspprobe.models.base import BaseAdapter, FamilySpec, _unwrap, as_frames


def run_grid(inputs: Any, row: int, token_id: int, n_frames: int, rows: int, cols: int,
             frame_size: tuple[int, int]) -> TokenGrid:
    """The grid of a row whose image tokens are one ``rows x cols`` row-major run per frame, each
    token an equal box of the frame (PaliGemma, Gemma 3, GLM-4.1V); ValueError on a wrong count."""
    pos = (inputs["input_ids"][row] == token_id).nonzero().squeeze(-1).cpu()
    if pos.numel() != n_frames * rows * cols:
        raise ValueError(f"{pos.numel()} image tokens in row {row}, expected {n_frames}x{rows}x{cols}")
    grid = TokenGrid.regular(n_frames, rows, cols, frame_size)
    grid.seq_index = pos.reshape(n_frames, rows, cols)
    return grid


class PaliGemmaAdapter(BaseAdapter):
    #: the tiny model already keeps this checkpoint's processor and vision geometry
    real_checkpoints = ("google/paligemma2-3b-pt-224",)

    spec = FamilySpec(
        model_type="paligemma",
        display_name="PaliGemma 2",
        hub_examples=("google/paligemma2-3b-pt-224", "google/paligemma2-3b-pt-448", "google/paligemma2-3b-mix-224"),
        model_class="PaliGemmaForConditionalGeneration",
        processor_class="PaliGemmaProcessor",
        image_processor_class="SiglipImageProcessorPil",
        patch_size=14, merge_size=1, image_token="<image>",
        processor_kwargs=(("size", {"height": 224, "width": 224}),),
        notes="squash to S (224/448/896), one token per 14-px patch; prefix '<image>'*F + <bos> + prompt + '\\n'",
        projector_keys=("multi_modal_projector",),
        vision_keys=("vision_tower",),
    )

    def prepare(self, samples: Sequence[tuple[Any, str]], *, add_generation_prompt: bool = True,
                modality: str = "images"):
        """Processor inputs for (frames, prompt) samples: ``<image>`` per frame + prompt (no chat template)."""
        from PIL import Image

        self.check_modality(modality)  # images only: a one-line error for video

        per_sample, texts = [], []
        for i, (frames, prompt) in enumerate(samples):
            arr = as_frames(frames, what=f"sample {i} frames")
            per_sample.append([Image.fromarray(f) for f in arr])
            texts.append(self.processor.image_token * len(arr) + (prompt or ""))
        inputs = self.processor(text=texts, images=per_sample, return_tensors="pt", padding=True)
        inputs.pop("labels", None)
        return inputs.to(device=self.device, dtype=self.dtype) if self.dtype.is_floating_point else inputs

    def _grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                      first_image: int) -> TokenGrid:
        H, W = frame_size
        cfg = _unwrap(self.model).config
        S, p = int(cfg.vision_config.image_size), int(cfg.vision_config.patch_size)
        g = S // p
        if g * p != S:  # pragma: no cover - 224 / 448 / 896 are multiples of 14
            raise ValueError(f"image size {S} is not a multiple of the patch size {p}")
        return run_grid(inputs, row, self.image_token_id, n_frames, g, g, (H, W))

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
        from transformers import (
            PaliGemmaConfig,
            PaliGemmaForConditionalGeneration,
            PaliGemmaProcessor,
            SiglipImageProcessorPil,
        )

        from gaspprobe.models.tiny import make_tokenizer

        tok = make_tokenizer(["<pad>", "<eos>", "<bos>", "<unk>", "<image>"], eos="<eos>", pad="<pad>", bos="<bos>",
                             named={"image_token": "<image>"})
        ip = SiglipImageProcessorPil(size={"height": 224, "width": 224}, resample=3, image_mean=[0.5] * 3,
                                     image_std=[0.5] * 3)
        ip.image_seq_length = 256
        proc = PaliGemmaProcessor(image_processor=ip, tokenizer=tok)  # adds <locXXXX>/<segXXX> to tok
        cfg = PaliGemmaConfig(
            vision_config=dict(model_type="siglip_vision_model", hidden_size=64, intermediate_size=128,
                               num_hidden_layers=2, num_attention_heads=4, image_size=224, patch_size=14,
                               vision_use_head=False, projection_dim=64),
            text_config=dict(model_type="gemma2", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                             query_pre_attn_scalar=32, sliding_window=4096, attn_logit_softcapping=50.0,
                             final_logit_softcapping=30.0, bos_token_id=tok.bos_token_id,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
            image_token_index=tok.convert_tokens_to_ids("<image>"), projection_dim=64,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
        torch.manual_seed(seed)
        model = PaliGemmaForConditionalGeneration(cfg).eval()
        return model, proc
