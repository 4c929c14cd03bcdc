"""GLM-4.1V adapter (``model_type`` ``glm4v``; e.g. ``zai-org/GLM-4.1V-9B-Thinking``).

Token layout (transformers ``Glm4vImageProcessor`` + ``Glm4vProcessor`` + ``Glm4vVisionModel``):
like Qwen2-VL. Each frame is resized, aspect kept approximately and with NO crop, by
``smart_resize`` to (h, w) multiples of ``patch*merge`` = 28 within the pixel budget
(``size["shortest_edge"]`` .. ``size["longest_edge"]`` = 12544 .. 47040000 in the checkpoint); the
processor lists the 14-px patches in 2 x 2 blocks (``image_grid_thw``; a still image is repeated
over the temporal patch of 2) and the vision model's ``downsample`` convolution turns each block of
four consecutive patches into ONE token. So image i is one run of ``(h/28) x (w/28)``
``<|image|>`` tokens in row-major order between ``<|begin_of_image|>`` and ``<|end_of_image|>``,
and token (r, c) covers ``[c*W/cols, (c+1)*W/cols) x [r*H/rows, (r+1)*H/rows)`` of the frame.

Processor: ``Glm4vProcessor`` takes a video processor (torchvision); tiny models and hub
checkpoints on machines without torchvision use :class:`Glm4vImageOnlyProcessor`.

The tiny model keeps ``GLM-4.1V-9B-Thinking``'s processor and vision geometry (patch 14, merge 2,
temporal patch 2, the pixel budget above, bicubic, CLIP mean/std, 336-px position-embedding grid;
partial rotary 0.5 with the mrope sections scaled to the tiny head) with a 64-wide, 2-layer vision
model and GLM-4 text model and random weights.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Glm4vProcessor

from gaspprobe.models.adapter import TokenGrid
from gaspprobe.models.base import BaseAdapter, FamilySpec
from gaspprobe.models.paligemma import run_grid

# zai-org/GLM-4.1V-9B-Thinking chat template, cut to the image / video / text placeholders
_GLM4V_TEMPLATE = (
    "[gMASK]<sop>{% for message in messages %}{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|begin_of_image|><|image|><|end_of_image|>"
    "{% elif item['type'] == 'video' %}<|begin_of_video|><|video|><|end_of_video|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_GLM4V_SPECIALS = ["<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
                   "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>", "<|image|>",
                   "<|video|>"]


class Glm4vImageOnlyProcessor(Glm4vProcessor):
    """:class:`~transformers.Glm4vProcessor` without a video processor (no torchvision needed)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template)


class Glm4vAdapter(BaseAdapter):
    #: the tiny model already keeps this checkpoint's processor and vision geometry
    real_checkpoints = ("zai-org/GLM-4.1V-9B-Thinking",)

    spec = FamilySpec(
        model_type="glm4v",
        display_name="GLM-4.1V",
        hub_examples=("zai-org/GLM-4.1V-9B-Thinking", "zai-org/GLM-4.1V-9B-Base"),
        model_class="Glm4vForConditionalGeneration",
        processor_class="Glm4vProcessor",
        image_processor_class="Glm4vImageProcessorPil",
        patch_size=14, merge_size=2, image_token="<|image|>",
        processor_kwargs=(("size", {"shortest_edge": 12544, "longest_edge": 47040000}),),
        notes="smart_resize (no crop) to multiples of 28, 2x2 blocks merged by a conv, one token run per image",
        image_only_processor="gaspprobe.models.glm4v:Glm4vImageOnlyProcessor",
        projector_keys=("visual.merger", "visual.downsample"),
        vision_keys=("visual.",),
        lora_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"),  # GLM fuses gate+up
    )

    video_path = ("video processor: smart_resize (its own budget), 2 frames per temporal patch, 2x2 merge; "
                  "each slice is <|image|> tokens after a timestamp inside <|begin_of_video|>")

    @property
    def video_seq_token_id(self) -> int:
        return self.image_token_id  # GLM-4.1V writes a video's slices as <|image|> tokens

    def _video_grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                            video: int) -> TokenGrid:
        return self._thw_video_grid(inputs, row, frame_size, n_frames, video)

    def _grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                      first_image: int) -> TokenGrid:
        H, W = frame_size
        ip = self.processor.image_processor
        merge = int(ip.merge_size)
        thw = inputs["image_grid_thw"][first_image:first_image + n_frames].tolist()
        t, gh, gw = thw[0]
        if any(tuple(x) != (t, gh, gw) for x in thw) or t != 1:  # pragma: no cover - same-size frames
            raise ValueError(f"unexpected image_grid_thw {thw}")
        rows, cols = gh // merge, gw // merge
        grid = run_grid(inputs, row, self.image_token_id, n_frames, rows, cols, (H, W))
        grid.extra["resized"] = (gh * int(ip.patch_size), gw * int(ip.patch_size))
        return grid

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
        from transformers import Glm4vConfig, Glm4vForConditionalGeneration, Glm4vImageProcessorPil

        from gaspprobe.models.tiny import make_tokenizer

        tok = make_tokenizer(_GLM4V_SPECIALS, eos="<|user|>", pad="<|endoftext|>",
                             named={"image_token": "<|image|>", "video_token": "<|video|>"})
        ids = {name: tok.convert_tokens_to_ids(t) for name, t in {
            "image_token_id": "<|image|>", "video_token_id": "<|video|>",
            "image_start_token_id": "<|begin_of_image|>", "image_end_token_id": "<|end_of_image|>",
            "video_start_token_id": "<|begin_of_video|>", "video_end_token_id": "<|end_of_video|>"}.items()}
        cfg = Glm4vConfig(
            text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=1, attention_bias=True,
                             rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                              "partial_rotary_factor": 0.5, "mrope_section": [2, 3, 3]},
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
            vision_config=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=64,
                               patch_size=14, image_size=336, spatial_merge_size=2, temporal_patch_size=2,
                               hidden_act="silu"),
            **ids,
        )
        torch.manual_seed(seed)
        model = Glm4vForConditionalGeneration(cfg).eval()
        ip = Glm4vImageProcessorPil(size={"shortest_edge": 12544, "longest_edge": 47040000}, patch_size=14,
                                    merge_size=2, temporal_patch_size=2, resample=3,
                                    image_mean=[0.48145466, 0.4578275, 0.40821073],
                                    image_std=[0.26862954, 0.26130258, 0.27577711])
        from gaspprobe.models.video import family_processor

        # video_preprocessor_config.json of GLM-4.1V-9B-Thinking
        vkw = dict(size={"shortest_edge": 12544, "longest_edge": 47040000}, patch_size=14, merge_size=2,
                   temporal_patch_size=2, resample=3, fps=2, num_frames=16, do_sample_frames=True,
                   image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
        return model, family_processor("Glm4vProcessor", Glm4vImageOnlyProcessor, "Glm4vVideoProcessor", vkw,
                                       image_processor=ip, tokenizer=tok, chat_template=_GLM4V_TEMPLATE)
