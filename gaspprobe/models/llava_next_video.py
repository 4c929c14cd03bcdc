"""LLaVA-NeXT-Video adapter (``model_type`` ``llava_next_video``; e.g. ``llava-hf/LLaVA-NeXT-Video-7B-hf``).

The model of the GASP paper's figure. Image input (how gaspprobe feeds the frames of a scene) is
LLaVA-NeXT's exactly: ``LlavaNextVideoModel.pack_image_features`` is a copy of LLaVA-NeXT's, so each
frame is a base view (24 x 24, ``grid.extra["base"]``) plus the anyres high-resolution view (the
grid: best pinpoint canvas, unpadded, newline per row); see :mod:`gaspprobe.models.llava_next` for
the geometry. The video path (``modality="video"``: ``<video>``, each frame resized to shortest
edge 336 and centre-cropped to 336 by the video processor, CLIP's 24 x 24 patches average-pooled
2 x 2 by ``LlavaNextVideoPooler`` to 12 x 12 tokens per frame, no newlines, one frame per temporal
slice): a token covers the 28 x 28 processed pixels of its pooled patches, mapped back through the
processor's own resize (``get_resize_output_image_size``) and crop offsets.

Processor: ``LlavaNextVideoProcessor`` takes a video processor, which needs torchvision
(:mod:`gaspprobe.models.video`); where it cannot import, the tiny model and hub checkpoints use
:class:`LlavaNextVideoImageOnlyProcessor` (the same processor without it; image behaviour unchanged).

The tiny model keeps the real checkpoint's processor and vision geometry (hub config.json and
preprocessor_config.json of ``llava-hf/LLaVA-NeXT-Video-7B-hf``: CLIP-L/14 at 336, the five
pinpoints, bicubic, CLIP mean/std, ``vision_feature_layer`` -2, "default", average pooling stride 2,
``<video>`` before ``<image>`` in the vocabulary, the vicuna chat template) with 64-wide, 2-layer
towers and random weights.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from transformers import LlavaNextVideoProcessor

from gaspprobe.models.adapter import TokenGrid

from gaspprobe.models.llava_next import REAL_PINPOINTS, LlavaNextAdapter, _tiny_clip_336, real_next_image_processor

# llava-hf/LLaVA-NeXT-Video-7B-hf chat_template.json
_VIDEO_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


class LlavaNextVideoImageOnlyProcessor(LlavaNextVideoProcessor):
    """:class:`~transformers.LlavaNextVideoProcessor` without a video processor (no torchvision needed)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, patch_size=None,
                 vision_feature_select_strategy=None, video_token="<video>", image_token="<image>",
                 num_additional_image_tokens=0, **kwargs):
        # The parent hands (video_processor, image_processor, tokenizer) POSITIONALLY to ProcessorMixin,
        # which zips them with this class's attributes (image_processor, tokenizer: read from this
        # signature). Passing (image_processor, tokenizer, tokenizer) therefore gives ProcessorMixin
        # exactly (image_processor, tokenizer), and the parent reads its token names from the tokenizer.
        super().__init__(image_processor, tokenizer, tokenizer, chat_template=chat_template, patch_size=patch_size,
                         vision_feature_select_strategy=vision_feature_select_strategy, video_token=video_token,
                         image_token=image_token, num_additional_image_tokens=num_additional_image_tokens)


class LlavaNextVideoAdapter(LlavaNextAdapter):
    #: the tiny model already keeps this checkpoint's processor and vision geometry
    real_checkpoints = ("llava-hf/LLaVA-NeXT-Video-7B-hf",)

    # the image path is LLaVA-NeXT's (same geometry, processor kwargs and weight names)
    spec = replace(
        LlavaNextAdapter.spec,
        model_type="llava_next_video",
        display_name="LLaVA-NeXT-Video",
        hub_examples=("llava-hf/LLaVA-NeXT-Video-7B-hf", "llava-hf/LLaVA-NeXT-Video-34B-hf"),
        model_class="LlavaNextVideoForConditionalGeneration",
        processor_class="LlavaNextVideoProcessor",
        notes="images: LLaVA-NeXT anyres (base 24x24 + unpadded tiles, newline per row); video path: 2x2 pooled 12x12",
        image_only_processor="gaspprobe.models.llava_next_video:LlavaNextVideoImageOnlyProcessor",
    )

    video_path = "video processor: shortest edge 336, centre crop 336, 24x24 patches 2x2 average-pooled to 12x12"

    def _video_grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                            video: int) -> TokenGrid:
        import numpy as np
        import torch
        from transformers.image_transforms import get_resize_output_image_size
        from transformers.image_utils import ChannelDimension

        H, W = frame_size
        vp = self.processor.video_processor
        cfg = self.model.config
        pv = inputs["pixel_values_videos"]  # [B, T, 3, h, w], every frame processed alike
        T, ch, cw = int(pv.shape[1]), int(pv.shape[-2]), int(pv.shape[-1])
        patch, stride = int(self.processor.patch_size), int(cfg.spatial_pool_stride)
        side = int(cfg.vision_config.image_size) // patch  # the tower's patch grid (the pooler's view)
        rows = cols = side // stride
        if not getattr(vp, "do_resize", True):
            hr, wr = H, W
        elif vp.size.get("shortest_edge") if isinstance(vp.size, dict) else getattr(vp.size, "shortest_edge", None):
            se = vp.size["shortest_edge"] if isinstance(vp.size, dict) else vp.size.shortest_edge
            hr, wr = get_resize_output_image_size(np.zeros((1, H, W), np.uint8), size=int(se), default_to_square=False,
                                                  input_data_format=ChannelDimension.FIRST)
        else:
            hr, wr = ch, cw  # a fixed (height, width) resize
        top = int((hr - ch) / 2.0) if getattr(vp, "do_center_crop", False) else 0
        left = int((wr - cw) / 2.0) if getattr(vp, "do_center_crop", False) else 0
        if hr < ch or wr < cw:  # pragma: no cover - a crop larger than the resized frame pads it
            raise ValueError(f"video crop {ch}x{cw} exceeds the resized frame {hr}x{wr}")
        cell = patch * stride
        xs = (left + torch.arange(cols + 1, dtype=torch.float64) * cell) * W / wr
        ys = (top + torch.arange(rows + 1, dtype=torch.float64) * cell) * H / hr
        b = torch.stack(torch.broadcast_tensors(xs[None, :-1], ys[:-1, None], xs[None, 1:], ys[1:, None]), -1)
        pos = (inputs["input_ids"][row] == self.video_token_id).nonzero().squeeze(-1).cpu()
        if pos.numel() != T * rows * cols:
            raise ValueError(f"{pos.numel()} video tokens in row {row}, expected {T}x{rows}x{cols}")
        grid = TokenGrid(boxes=b[None].expand(T, rows, cols, 4).float().clone(),
                         seq_index=pos.reshape(T, rows, cols), frame_size=(H, W))
        grid.extra["frames"] = torch.arange(T)[:, None]
        grid.extra["resized"] = (hr, wr)
        grid.extra["crop"] = (left * W / wr, top * H / hr, (left + cw) * W / wr, (top + ch) * H / hr)
        return grid

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
        import torch
        from transformers import LlavaNextVideoConfig, LlavaNextVideoForConditionalGeneration

        from gaspprobe.models.tiny import make_tokenizer

        tok = make_tokenizer(["<unk>", "<s>", "</s>", "<video>", "<image>", "<pad>"], eos="</s>", pad="<pad>",
                             bos="<s>", named={"image_token": "<image>", "video_token": "<video>"})
        cfg = LlavaNextVideoConfig(
            vision_config=_tiny_clip_336(),
            text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id),
            image_token_index=tok.convert_tokens_to_ids("<image>"),
            video_token_index=tok.convert_tokens_to_ids("<video>"), image_grid_pinpoints=REAL_PINPOINTS,
            vision_feature_layer=-2, vision_feature_select_strategy="default", use_image_newline_parameter=True,
            spatial_pool_mode="average", spatial_pool_stride=2, spatial_pool_out_channels=64,
            image_seq_length=576, video_seq_length=288, projector_hidden_act="gelu",
            multimodal_projector_bias=True, tie_word_embeddings=False,
        )
        torch.manual_seed(seed)
        model = LlavaNextVideoForConditionalGeneration(cfg).eval()
        kw = dict(chat_template=_VIDEO_TEMPLATE, patch_size=14, vision_feature_select_strategy="default",
                  num_additional_image_tokens=1)
        from gaspprobe.models.video import ensure_torchvision

        if ensure_torchvision():  # the real processor, with the checkpoint's video processor
            from transformers import LlavaNextVideoVideoProcessor

            from gaspprobe.models.llava_next import CLIP_MEAN, CLIP_STD

            vp = LlavaNextVideoVideoProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                              do_center_crop=True, resample=3, image_mean=CLIP_MEAN,
                                              image_std=CLIP_STD)
            return model, LlavaNextVideoProcessor(video_processor=vp, image_processor=real_next_image_processor(),
                                                  tokenizer=tok, **kw)
        return model, LlavaNextVideoImageOnlyProcessor(image_processor=real_next_image_processor(), tokenizer=tok, **kw)
