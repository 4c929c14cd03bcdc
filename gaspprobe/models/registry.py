"""Model families by HF ``config.model_type``: the ONE place adapters are registered.

Adding a family = one module with a :class:`~gaspprobe.models.base.BaseAdapter` subclass plus one
``ADAPTERS.register`` line here (see ``docs/adding_a_model.md``). Entries are lazy
``"module:attr"`` strings so ``gaspprobe model list`` does not import torch.
"""

from __future__ import annotations

from gaspprobe.errors import GaspError, ModelError
from gaspprobe.registry import Registry

def _ensure_torchvision() -> None:
    # before any family's transformers classes import: transformers imports torchvision wherever
    # it is installed, and the CPU wheel pairing needs its op schemas first (gaspprobe.models.video)
    from gaspprobe.models.video import ensure_torchvision

    ensure_torchvision()


ADAPTERS: Registry = Registry("model_type", before_import=_ensure_torchvision)
ADAPTERS.register("qwen2_vl", "gaspprobe.models.qwen_vl:Qwen2VLAdapter")
ADAPTERS.register("qwen2_5_vl", "gaspprobe.models.qwen_vl:Qwen2_5_VLAdapter")
ADAPTERS.register("qwen3_vl", "gaspprobe.models.qwen_vl:Qwen3VLAdapter")
ADAPTERS.register("llava", "gaspprobe.models.llava:LlavaAdapter")
ADAPTERS.register("llava_onevision", "gaspprobe.models.llava_onevision:LlavaOnevisionAdapter")
ADAPTERS.register("idefics3", "gaspprobe.models.idefics3:Idefics3Adapter")
ADAPTERS.register("llava_next", "gaspprobe.models.llava_next:LlavaNextAdapter")
ADAPTERS.register("llava_next_video", "gaspprobe.models.llava_next_video:LlavaNextVideoAdapter")
ADAPTERS.register("internvl", "gaspprobe.models.internvl:InternVLAdapter")
ADAPTERS.register("smolvlm", "gaspprobe.models.smolvlm:SmolVLMAdapter")
ADAPTERS.register("gemma3", "gaspprobe.models.gemma3:Gemma3Adapter")
ADAPTERS.register("paligemma", "gaspprobe.models.paligemma:PaliGemmaAdapter")
ADAPTERS.register("glm4v", "gaspprobe.models.glm4v:Glm4vAdapter")

# Text-only model_types people may try by mistake (the adapters need an image pathway).
_TEXT_ONLY_HINT = ("llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "phi3", "gpt2", "opt")


def supported() -> list[str]:
    """Registered ``model_type`` names, sorted."""
    return ADAPTERS.names()


def adapter_class(model_type: str):
    """The adapter class for ``model_type``; one-line :class:`ModelError` listing the supported ones."""
    if model_type in _TEXT_ONLY_HINT:
        raise ModelError(f"model_type {model_type!r} is a text-only language model; gaspprobe needs a "
                         f"vision-language model (supported: {', '.join(supported())})")
    try:
        return ADAPTERS.get(model_type)
    except ModelError:
        raise
    except GaspError as e:
        raise ModelError(str(e).replace("unknown model_type", "unsupported model_type")) from None
