"""Gemma 3 adapter (``model_type`` ``gemma3``; e.g. ``google/gemma-3-4b-it``).

Token layout (transformers ``Gemma3ImageProcessor`` + ``Gemma3Processor`` + ``Gemma3MultiModalProjector``):
each frame is squashed (no crop, no padding) to ``S x S`` (896); SigLIP cuts it into ``(S/p)^2``
patches (64 x 64 of 14 px, exactly 896 px) and the projector average-pools ``k x k`` blocks
(``k = 64 / sqrt(mm_tokens_per_image)`` = 4) into ``16 x 16`` = 256 tokens, row-major. The
processor writes ``\\n\\n<start_of_image>`` + ``<image_soft_token>`` * 256 + ``<end_of_image>\\n\\n``
per image. So token (r, c) covers the box ``[c*W/16, (c+1)*W/16) x [r*H/16, (r+1)*H/16)`` of the
original frame. Image tokens attend to each other bidirectionally (``token_type_ids``), which the
processor's output carries into every forward.

Pan-and-scan (``do_pan_and_scan``, extra crops of wide frames) is off, as in the checkpoints'
preprocessor_config.json; a processor with it on is refused (one line), since its crops would
interleave with the frames' token runs.

The tiny model keeps ``google/gemma-3-4b-it``'s processor and vision geometry (896 px, patch 14,
256 tokens per image, bilinear, mean/std 0.5; ``<start_of_image>``/``<end_of_image>``/
``<image_soft_token>``; the chat template's image and text parts) with a 64-wide, 2-layer SigLIP and
Gemma-3 text model and random weights.
"""

from __future__ import annotations

from typing import Any

import torch

from gaspprobe.errors import ModelError
from gaspprobe.models.adapter import TokenGrid
from gaspprobe.models.base import BaseAdapter, FamilySpec, _unwrap
from gaspprobe.models.paligemma import run_grid

# google/gemma-3-4b-it chat_template.json, cut to what renders turns with images and text
_GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<start_of_image>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


class Gemma3Adapter(BaseAdapter):
    #: the tiny model already keeps this checkpoint's processor and vision geometry
    real_checkpoints = ("google/gemma-3-4b-it",)

    spec = FamilySpec(
        model_type="gemma3",
        display_name="Gemma 3",
        hub_examples=("google/gemma-3-4b-it", "google/gemma-3-12b-it", "google/gemma-3-27b-it"),
        model_class="Gemma3ForConditionalGeneration",
        processor_class="Gemma3Processor",
        image_processor_class="Gemma3ImageProcessorPil",
        patch_size=14, merge_size=4, image_token="<image_soft_token>",
        processor_kwargs=(("size", {"height": 896, "width": 896}), ("do_pan_and_scan", False)),
        notes="squash to 896, 64x64 patches average-pooled 4x4 -> 16x16 tokens; pan-and-scan off",
        projector_keys=("multi_modal_projector",),
        vision_keys=("vision_tower",),
    )

    def _images_arg(self, per_sample):
        return [list(ims) for ims in per_sample]  # nested: Gemma3Processor pairs images with prompts per sample

    def _grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                      first_image: int) -> TokenGrid:
        H, W = frame_size
        from gaspprobe.models.pixels import pixel_settings

        if pixel_settings(self.processor).get("image_splitting"):  # what the processor call does
            raise ModelError("gemma3: pan-and-scan (image_splitting) is on; gaspprobe's Gemma 3 grid needs it "
                             "off (image_splitting=false, the checkpoints' default)")
        cfg = _unwrap(self.model).config
        S, p = int(cfg.vision_config.image_size), int(cfg.vision_config.patch_size)
        g = int(round(int(cfg.mm_tokens_per_image) ** 0.5))
        if (S // p) * p != S or (S // p) % g:  # pragma: no cover - every Gemma 3 checkpoint: 896 / 14 / 4
            raise ValueError(f"image size {S}, patch {p} and {g}x{g} tokens do not tile evenly")
        return run_grid(inputs, row, self.image_token_id, n_frames, g, g, (H, W))

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
        from transformers import (
            Gemma3Config,
            Gemma3ForConditionalGeneration,
            Gemma3ImageProcessorPil,
            Gemma3Processor,
        )

        from gaspprobe.models.tiny import make_tokenizer

        tok = make_tokenizer(["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>",
                              "<start_of_image>", "<end_of_image>", "<image_soft_token>"],
                             eos="<eos>", pad="<pad>", bos="<bos>",
                             named={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                    "image_token": "<image_soft_token>"})
        cfg = Gemma3Config(
            vision_config=dict(model_type="siglip_vision_model", hidden_size=64, intermediate_size=128,
                               num_hidden_layers=2, num_attention_heads=4, image_size=896, patch_size=14,
                               vision_use_head=False),
            text_config=dict(model_type="gemma3_text", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                             query_pre_attn_scalar=32, sliding_window=1024,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id),
            mm_tokens_per_image=256, boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
            eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
            image_token_index=tok.convert_tokens_to_ids("<image_soft_token>"),
        )
        torch.manual_seed(seed)
        model = Gemma3ForConditionalGeneration(cfg).eval()
        # transformers initialises the projection to ZEROS (a trained checkpoint overwrites it); a
        # random tiny model would then give every image token the same (zero) embedding
        with torch.no_grad():
            model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, 64 ** -0.5)
        ip = Gemma3ImageProcessorPil(size={"height": 896, "width": 896}, resample=2, image_mean=[0.5] * 3,
                                     image_std=[0.5] * 3, do_pan_and_scan=False)
        proc = Gemma3Processor(image_processor=ip, tokenizer=tok, chat_template=_GEMMA3_TEMPLATE,
                               image_seq_length=256)
        return model, proc
