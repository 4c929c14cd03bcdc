"""Any Hugging Face VLM behind one adapter contract: loading, tiny offline models, token grids, capture.

Start here:

* :func:`load` - hub id or local folder -> adapter of the family given by ``config.model_type``
  (registry in :mod:`gaspprobe.models.registry`, one module per family: :mod:`.qwen_vl`, ...).
* :func:`build_tiny` - a tiny randomly initialised model of a family, saved like a hub checkpoint;
  :func:`gaspprobe.models.testing.tiny_adapter` builds-and-loads one per process for tests.
* the adapter (:class:`~gaspprobe.models.base.BaseAdapter`): ``token_grid``, ``capture`` /
  ``run_layers`` (one layer at a time), ``image_features`` (with grad), ``generate``.
* the contract types live in :mod:`gaspprobe.models.adapter` (``TokenGrid``, ``LayerCapture``).

Importing this package is cheap; torch/transformers load on first use.
"""

from __future__ import annotations

from typing import Any

from gaspprobe.models.adapter import LayerCapture, TokenGrid, VLMAdapter, layer_names

__all__ = ["load", "build_tiny", "supported", "adapter_class", "TokenGrid", "LayerCapture", "VLMAdapter",
           "layer_names"]


def load(model: Any, dtype: str = "auto", device: str = "cpu", **kwargs: Any):
    """See :func:`gaspprobe.models.loading.load`."""
    from gaspprobe.models.loading import load as _load

    return _load(model, dtype=dtype, device=device, **kwargs)


def build_tiny(arch: str, out: Any, seed: int = 0, *, force: bool = False):
    """See :func:`gaspprobe.models.tiny.build_tiny`."""
    from gaspprobe.models.tiny import build_tiny as _build

    return _build(arch, out, seed=seed, force=force)


def supported() -> list[str]:
    """Registered ``model_type`` names."""
    from gaspprobe.models.registry import supported as _supported

    return _supported()


def adapter_class(model_type: str):
    """The adapter class registered for ``model_type``."""
    from gaspprobe.models.registry import adapter_class as _cls

    return _cls(model_type)
