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


from gaspprobe.models.pixels import PIXEL_SETTINGS, _size_get, pixel_settings  # noqa: E402,F401 (re-exported)


def apply_pixels(processor: Any, pixels: dict | None, *, setting: str = "pixels") -> dict:
    """Set the image processor's pixel budget; returns :func:`pixel_settings` afterwards.

    ``pixels`` keys: ``min_pixels`` / ``max_pixels`` (Qwen-style area bounds, the processor's
    ``size`` shortest/longest edge), ``size`` (a dict replacing the processor's, e.g.
    ``{"longest_edge": 728}``), ``max_image_size`` (Idefics3/SmolVLM tile), ``image_splitting``
    (Idefics3/SmolVLM ``do_image_splitting``, InternVL ``crop_to_patches``, Gemma 3 pan-and-scan).
    A key the processor has no such setting for, or a value of the wrong kind, is a one-line
    :class:`ConfigError` naming ``setting.key``.
    """
    from gaspprobe.errors import ConfigError

    ip = processor.image_processor
    for key, val in dict(pixels or {}).items():
        where = f"{setting}.{key}"
        if key not in PIXEL_SETTINGS:
            raise ConfigError(f"{where}: unknown pixel setting (known: {', '.join(PIXEL_SETTINGS)})")
        if key in ("min_pixels", "max_pixels"):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ConfigError(f"{where}: must be a positive integer number of pixels, got {val!r}")
            size = getattr(ip, "size", None)
            edge = "shortest_edge" if key == "min_pixels" else "longest_edge"
            if getattr(ip, "merge_size", None) is None or _size_get(size, edge) is None:
                raise ConfigError(f"{where}: {type(ip).__name__} has no area budget (use 'size')")
            unit = int(ip.patch_size) * int(ip.merge_size)
            if key == "max_pixels" and val < unit * unit:
                raise ConfigError(f"{where}: {val} px is below one token ({unit}x{unit} = {unit * unit} px)")
            new = {k: _size_get(size, k) for k in ("shortest_edge", "longest_edge")}
            new[edge] = val
            if new["shortest_edge"] > new["longest_edge"]:
                raise ConfigError(f"{where}: min_pixels {new['shortest_edge']} > max_pixels {new['longest_edge']}")
            ip.size = type(size)(**new) if not isinstance(size, dict) else new
            if getattr(ip, key, None) is not None:
                setattr(ip, key, val)
        elif key in ("size", "max_image_size"):
            if not isinstance(val, dict) or not val or not all(isinstance(v, int) and v >= 1 for v in val.values()):
                raise ConfigError(f"{where}: must be a table of positive integers, e.g. {{longest_edge = 728}}, got {val!r}")
            old = getattr(ip, key, None)
            if old is None:
                raise ConfigError(f"{where}: {type(ip).__name__} has no {key!r}")
            setattr(ip, key, type(old)(**val) if not isinstance(old, dict) else dict(val))
        else:  # image_splitting
            if not isinstance(val, bool):
                raise ConfigError(f"{where}: must be true or false, got {val!r}")
            for attr in ("do_image_splitting", "crop_to_patches", "do_pan_and_scan"):
                if getattr(ip, attr, None) is not None:
                    setattr(ip, attr, val)
                    # a processor-level call default (InternVL's crop_to_patches=True, Gemma 3's
                    # do_pan_and_scan=False) outranks the image processor's attribute: set it too
                    defaults = getattr(processor, "images_kwargs", None)
                    if isinstance(defaults, dict) and attr in defaults:
                        processor.images_kwargs = {**defaults, attr: val}
                    break
            else:
                raise ConfigError(f"{where}: {type(ip).__name__} does not split images")
    return pixel_settings(processor)


def load(model: Any, dtype: str = "auto", device: str = "cpu", *, processor_kwargs: dict | None = None,
         pixels: dict | None = None):
    """Load a VLM and wrap it in its family's adapter.

    Args:
        model: a hub id (``"owner/name"``), a local folder (``save_pretrained`` layout), or an
            adapter (returned unchanged).
        dtype: "auto" (the checkpoint's), "float32", "float16" or "bfloat16".
        device: torch device string, e.g. "cpu", "cuda", "cuda:1".
        processor_kwargs: passed to the processor's ``from_pretrained``.
        pixels: the processor's pixel budget (:func:`apply_pixels`: ``min_pixels``, ``max_pixels``,
            ``size``, ``max_image_size``, ``image_splitting``), checked (a budget below one image
            token is a one-line ConfigError naming the setting) and recorded in
            ``adapter.pixels`` (every setting in effect) for run manifests.
    Returns:
        a :class:`~gaspprobe.models.base.BaseAdapter` subclass instance (``model.eval()``).
    Raises:
        ModelError: missing folder, unreachable hub id, unsupported or text-only ``model_type``.
    """
    from gaspprobe.models.base import BaseAdapter

    if isinstance(model, BaseAdapter):
        if pixels:
            model.pixels = apply_pixels(model.processor, pixels)
            model.check_pixels()
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
    from gaspprobe.models.video import ensure_torchvision

    ensure_torchvision()  # before transformers' processor classes import (they import torchvision where it is installed)
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
    if dtype == "auto" and str(device) == "cpu" and _checkpoint_dtype(config) == "float16":
        torch_dtype = torch.bfloat16  # fp16 matmuls on a CPU are ~10x slower than bf16, same width
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
            try:
                processor = _import(meta["processor_class"]).from_pretrained(src, **pkw)
            except Exception:
                # a tiny model saved with its video processor, loaded where torchvision cannot import
                if not cls.spec.image_only_processor:
                    raise
                processor = _import(cls.spec.image_only_processor).from_pretrained(src, **pkw)
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
    ad = cls(hf_model, processor, model_id=src)
    _check_processor(ad, path if local else None, src)
    if pixels:
        ad.pixels = apply_pixels(processor, pixels)
        ad.check_pixels()
    return ad


def _check_processor(ad: Any, folder: Path | None, src: str) -> None:
    """The processor must turn a frame into this family's image tokens (chat template, image token,
    sizes): checked once here, so a checkpoint missing one fails at load in one line naming its
    file, not inside a probe or a training step."""
    try:
        grid = ad.token_grid((224, 224), 1)
        if grid.tokens_per_frame < 1:
            raise ValueError("no image token for a 224x224 frame")
    except Exception as e:
        where: Any = src
        if folder is not None:
            names = ("chat_template.jinja", "chat_template.json") if "chat template" in str(e).lower() else (
                "processor_config.json", "preprocessor_config.json")
            found = [folder / n for n in names if (folder / n).is_file()]
            where = found[0] if found else folder / names[0]
        raise ModelError(f"the processor cannot build {ad.spec.display_name} image tokens ({_one_line(e)})",
                         path=where) from None


def _checkpoint_dtype(config: Any) -> str | None:
    """The checkpoint's stored dtype name (``dtype`` / ``torch_dtype``, of the config or its text config)."""
    for c in (config, getattr(config, "text_config", None)):
        for name in ("dtype", "torch_dtype"):
            v = getattr(c, name, None) if c is not None else None
            if v is not None:
                return str(v).replace("torch.", "")
    return None


def _supported_set() -> set[str]:
    from gaspprobe.models.registry import supported

    return set(supported())
