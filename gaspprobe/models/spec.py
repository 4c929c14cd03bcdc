"""FamilySpec: the per-family facts in one frozen record (extraction and training facts).

Re-exported by :mod:`gaspprobe.models.base` (``from gaspprobe.models.base import FamilySpec`` keeps
working).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FamilySpec:
    """Per-family facts, in one place (cf. timm's ``PretrainedCfg``).

    Attributes:
        model_type: the HF ``config.model_type`` this family is registered under.
        display_name: human name, e.g. "Qwen2.5-VL".
        hub_examples: hub ids known to load with this adapter.
        model_class: transformers class of the full model (``...ForConditionalGeneration``).
        processor_class: the hub processor class (what ``AutoProcessor`` gives for a checkpoint).
        image_processor_class: the torchvision-free ``*Pil`` image processor used for tiny models.
        patch_size: vision patch size in pixels of the processed image.
        merge_size: patches merged into one LLM token per side (Qwen 2, LLaVA 1).
        image_token: the placeholder token the processor expands into image tokens.
        layers_path: attribute path from the full model to the decoder ``ModuleList``.
        processor_kwargs: the tiny processor's size settings (``(key, value)`` pairs), for inspect.
        notes: layout facts worth knowing (printed by ``gaspprobe model list``).
        image_only_processor: ``"module:Class"`` of an image-only processor subclass, tried when
            ``AutoProcessor`` fails (its video processor needs torchvision), or None.
        language_model_path: attribute path from the full model to the language model (the
            decoder stack's parent). Training facts: full fine-tuning and the default LoRA pattern
            are restricted to this module.
        projector_keys: parameter-name fragments of the vision projector / merger / connector.
        vision_keys: parameter-name fragments of the vision tower (projector excluded).
        lora_modules: linear module names (inside the language model) given LoRA by default.
    """

    model_type: str
    display_name: str
    hub_examples: tuple[str, ...]
    model_class: str
    processor_class: str
    image_processor_class: str
    patch_size: int
    merge_size: int = 1
    image_token: str = "<image>"
    layers_path: str = "model.language_model.layers"
    processor_kwargs: tuple[tuple[str, Any], ...] = ()
    notes: str = ""
    image_only_processor: str | None = None
    language_model_path: str = "model.language_model"
    projector_keys: tuple[str, ...] = ("multi_modal_projector",)
    vision_keys: tuple[str, ...] = ("vision_tower",)
    lora_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                     "down_proj")

    @property
    def language_model_name(self) -> str:
        """The last component of :attr:`language_model_path` (``language_model``, ``text_model``)."""
        return self.language_model_path.rsplit(".", 1)[-1]

    @property
    def lora_targets(self) -> str:
        """The default LoRA ``target_modules`` regex: this family's language-model linears only."""
        name = re.escape(self.language_model_name)
        return rf".*\.{name}\..*\.({'|'.join(self.lora_modules)})"
