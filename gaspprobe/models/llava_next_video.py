"""LLaVA-NeXT-Video adapter (``model_type`` ``llava_next_video``; e.g. ``llava-hf/LLaVA-NeXT-Video-7B-hf``).

The model of the GASP paper's figure. Image input (how gaspprobe feeds the frames of a scene) is
LLaVA-NeXT's exactly: ``LlavaNextVideoModel.pack_image_features`` is a copy of LLaVA-NeXT's, so each
frame is a base view (24 x 24, ``grid.extra["base"]``) plus the anyres high-resolution view (the
grid: best pinpoint canvas, unpadded, newline per row); see :mod:`gaspprobe.models.llava_next` for
the geometry. The video path (``<video>``, frames centre-cropped to 336 and 2x2 average-pooled to
12 x 12 tokens each, no newlines) is not used by this adapter.

Processor: ``LlavaNextVideoProcessor`` takes a video processor, which needs torchvision; the tiny
model and hub checkpoints on machines without torchvision use
:class:`LlavaNextVideoImageOnlyProcessor` (the same processor without it; image behaviour unchanged).

The tiny model keeps the real checkpoint's processor and vision geometry (hub config.json and
preprocessor_config.json of ``llava-hf/LLaVA-NeXT-Video-7B-hf``: CLIP-L/14 at 336, the five
pinpoints, bicubic, CLIP mean/std, ``vision_feature_layer`` -2, "default", average pooling stride 2,
``<video>`` before ``<image>`` in the vocabulary, the vicuna chat template) with 64-wide, 2-layer
towers and random weights.
"""

from __future__ import annotations

from dataclasses import replace

from transformers import LlavaNextVideoProcessor

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
        proc = LlavaNextVideoImageOnlyProcessor(image_processor=real_next_image_processor(), tokenizer=tok,
                                                chat_template=_VIDEO_TEMPLATE, patch_size=14,
                                                vision_feature_select_strategy="default",
                                                num_additional_image_tokens=1)
        return model, proc
