"""``gaspprobe.models.load``: a hub id or a local folder -> the family's adapter.

The path is the real one for downloaded checkpoints: ``AutoConfig`` gives ``model_type``, the
registry gives the adapter class, ``AutoModelForImageTextToText.from_pretrained`` the model and
``AutoProcessor.from_pretrained`` the processor (e.g. ``load("Qwen/Qwen2.5-VL-7B-Instruct",
dtype="bfloat16", device="cuda")``). Folders written by the tiny builder carry
``gaspprobe_model.json`` naming their image-only processor class (``AutoProcessor`` cannot reload
those), which is then used instead. Every failure is a one-line :class:`ModelError`.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from gaspprobe.errors import ModelError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DTYPES = ("auto", "float32", "float16", "bfloat16")


def _one_line(e: BaseException) -> str:
    lines = [s for s in str(e).strip().splitlines() if s.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def _import(ref: str):
    mod, attr = ref.split(":", 1)
    return getattr(importlib.import_module(mod), attr)


def load(model: Any, dtype: str = "auto", device: str = "cpu", *, processor_kwargs: dict | None = None):
    """Load a VLM and wrap it in its family's adapter.

    Args:
        model: a hub id (``"owner/name"``), a local folder (``save_pretrained`` layout), or an
            adapter (returned unchanged).
        dtype: "auto" (the checkpoint's), "float32", "float16" or "bfloat16".
        device: torch device string, e.g. "cpu", "cuda", "cuda:1".
        processor_kwargs: passed to the processor's ``from_pretrained`` (e.g. ``max_pixels``).
    Returns:
        a :class:`~gaspprobe.models.base.BaseAdapter` subclass instance (``model.eval()``).
    Raises:
        ModelError: missing folder, unreachable hub id, unsupported or text-only ``model_type``.
    """
    from gaspprobe.models.base import BaseAdapter

    if isinstance(model, BaseAdapter):
        return model
    if dtype not in _DTYPES:
        raise ModelError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    src = str(model)
    path = Path(src).expanduser()
    local = path.exists()
    if local:
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ModelError("not a model folder (no config.json)", path=path)
        src = str(path)
    elif not _HUB_ID.match(src):
        raise ModelError("no such model folder (and not a hub id like 'owner/name')", path=src)

    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from gaspprobe.models.registry import adapter_class
    from gaspprobe.models.tiny import read_meta

    try:
        config = AutoConfig.from_pretrained(src)
    except Exception as e:  # hub unreachable, unknown architecture, bad json
        raise ModelError(f"cannot load the config ({_one_line(e)})", path=src) from None
    model_type = getattr(config, "model_type", None)
    if getattr(config, "vision_config", None) is None and model_type not in _supported_set():
        raise ModelError(f"model_type {model_type!r} is a text-only model; gaspprobe needs a vision-language "
                         f"model (supported: {', '.join(sorted(_supported_set()))})", path=src)
    cls = adapter_class(model_type)

    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    try:
        # straight onto the device (no CPU copy of a 7B model first) when it is not the CPU
        kw = {} if str(device) == "cpu" else {"device_map": str(device)}
        hf_model = AutoModelForImageTextToText.from_pretrained(src, dtype=torch_dtype, **kw)
    except Exception as e:
        raise ModelError(f"cannot load the model ({_one_line(e)})", path=src) from None
    hf_model = hf_model.to(device).eval()

    meta = read_meta(path) if local else None
    pkw = dict(processor_kwargs or {})
    try:
        if meta and meta.get("processor_class"):
            processor = _import(meta["processor_class"]).from_pretrained(src, **pkw)
        else:
            try:
                processor = AutoProcessor.from_pretrained(src, **pkw)
            except Exception:
                if not cls.spec.image_only_processor:
                    raise
                processor = None
            # AutoProcessor raises, or silently returns only the tokenizer, when the checkpoint's
            # video processor cannot be built (it needs torchvision): images only will do
            if not hasattr(processor, "image_processor") and cls.spec.image_only_processor:
                processor = _import(cls.spec.image_only_processor).from_pretrained(src, **pkw)
    except Exception as e:
        raise ModelError(f"cannot load the processor ({_one_line(e)})", path=src) from None
    if not hasattr(processor, "image_processor"):
        raise ModelError("the processor has no image processor (a text-only tokenizer was found)", path=src)
    return cls(hf_model, processor, model_id=src)


def _supported_set() -> set[str]:
    from gaspprobe.models.registry import supported

    return set(supported())
