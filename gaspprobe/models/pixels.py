"""The processor's pixel budget as it stands (read-only; :func:`gaspprobe.models.loading.apply_pixels`
changes it). Its own module so that both the adapters (``base``) and the loader import it without a
cycle."""

from __future__ import annotations

from typing import Any


#: Processor pixel-budget settings :func:`apply_pixels` understands.
PIXEL_SETTINGS = ("min_pixels", "max_pixels", "size", "max_image_size", "image_splitting")


def _size_get(size: Any, key: str) -> Any:
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def pixel_settings(processor: Any) -> dict:
    """The image processor's pixel-budget settings in effect (JSON-ready, for run manifests)."""
    ip = processor.image_processor
    out: dict[str, Any] = {}
    size = getattr(ip, "size", None)
    if size is not None:
        keys = ("height", "width", "shortest_edge", "longest_edge")
        out["size"] = {k: int(_size_get(size, k)) for k in keys if _size_get(size, k) is not None}
    mis = getattr(ip, "max_image_size", None)
    if mis is not None:
        out["max_image_size"] = {k: int(v) for k, v in dict(mis).items() if v is not None}
    for name in ("min_pixels", "max_pixels"):
        if getattr(ip, name, None) is not None:
            out[name] = int(getattr(ip, name))
    defaults = getattr(processor, "images_kwargs", None)
    defaults = defaults if isinstance(defaults, dict) else {}
    for attr in ("do_image_splitting", "crop_to_patches", "do_pan_and_scan"):
        if getattr(ip, attr, None) is not None:
            # what the processor call really does: its own call default (a class-level
            # ``images_kwargs``, e.g. InternVL's crop_to_patches=True) outranks the image processor's
            # attribute, which preprocessor_config.json may set otherwise
            out["image_splitting"] = bool(defaults[attr] if attr in defaults else getattr(ip, attr))
            out["image_splitting_setting"] = f"processor.images_kwargs.{attr}" if attr in defaults else attr
            break
    return out
