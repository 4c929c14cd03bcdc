"""Image-only processor subclasses for the tiny offline models (no torchvision here).

In transformers 5.x every processor that takes a ``video_processor`` refuses ``None`` for it, and
every video processor needs torchvision. Subclassing with an ``__init__`` that has no
``video_processor`` parameter makes ``ProcessorMixin`` read the attribute list from the subclass
signature, so the processor is built (and saved / reloaded) with only the image processor and the
tokenizer. Behaviour on images is exactly the parent's.

``AutoProcessor`` cannot reload these (it does not know the class names), so the tiny builder writes
``gaspprobe_model.json`` with ``"processor_class": "gaspprobe.models.processors:<Name>"`` beside the
weights and :func:`gaspprobe.models.load` uses it. Hub checkpoints never need these classes.
"""

from __future__ import annotations

from transformers import (
    LlavaOnevisionProcessor,
    Qwen2_5_VLProcessor,
    Qwen2VLProcessor,
    Qwen3VLProcessor,
)


class Qwen2VLImageOnlyProcessor(Qwen2VLProcessor):
    """:class:`~transformers.Qwen2VLProcessor` without a video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template)


class Qwen2_5_VLImageOnlyProcessor(Qwen2_5_VLProcessor):
    """:class:`~transformers.Qwen2_5_VLProcessor` without a video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template)


class Qwen3VLImageOnlyProcessor(Qwen3VLProcessor):
    """:class:`~transformers.Qwen3VLProcessor` without a video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template)


class LlavaOnevisionImageOnlyProcessor(LlavaOnevisionProcessor):
    """:class:`~transformers.LlavaOnevisionProcessor` without a video processor."""

    def __init__(self, image_processor=None, tokenizer=None, num_image_tokens=None,
                 vision_feature_select_strategy=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, num_image_tokens,
                         vision_feature_select_strategy, chat_template, **kwargs)
