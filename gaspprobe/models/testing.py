"""Tiny adapters for tests: ``tiny_adapter(arch, seed=0)`` builds once per process and caches.

Other subsystems' tests (probe, train, bench) call this instead of sharing a conftest fixture::

    from gaspprobe.models.testing import tiny_adapter
    ad = tiny_adapter("qwen2_5_vl")          # built into a per-process temp dir, loaded via models.load

The model goes through the same ``save_pretrained`` -> :func:`gaspprobe.models.load` path a hub
checkpoint would. The cached adapter is shared: do not modify its weights in place (train a copy, or
call with ``fresh=True`` to get a newly loaded instance from the same folder).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

_LOCK = threading.Lock()
_ROOT: Path | None = None
_DIRS: dict[tuple[str, int], Path] = {}
_ADAPTERS: dict[tuple[str, int], object] = {}

#: The family the probe/train tests default to.
DEFAULT_ARCH = "qwen2_5_vl"


def _root() -> Path:
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="gaspprobe-tiny-"))
        atexit.register(shutil.rmtree, _ROOT, True)
    return _ROOT


def tiny_model_dir(arch: str = DEFAULT_ARCH, seed: int = 0) -> Path:
    """Folder of the tiny ``arch`` model (built on first call in this process)."""
    from gaspprobe.models.tiny import build_tiny

    key = (arch, int(seed))
    with _LOCK:
        if key not in _DIRS:
            _DIRS[key] = build_tiny(arch, _root() / f"{arch}-s{seed}", seed=seed)
        return _DIRS[key]


def tiny_adapter(arch: str = DEFAULT_ARCH, seed: int = 0, *, fresh: bool = False):
    """The loaded adapter of the tiny ``arch`` model (cached per process unless ``fresh``)."""
    import torch

    from gaspprobe.models.loading import load

    key = (arch, int(seed))
    d = tiny_model_dir(arch, seed)
    if fresh:
        return load(d, dtype="float32")
    with _LOCK:
        if key not in _ADAPTERS:
            _ADAPTERS[key] = load(d, dtype="float32")
        ad = _ADAPTERS[key]
    assert isinstance(ad.model, torch.nn.Module)
    return ad


_REAL: dict[tuple[str, str | None, int], object] = {}


def real_adapter(arch: str, checkpoint: str | None = None, seed: int = 0):
    """An adapter of family ``arch`` at a REAL checkpoint's processor and vision geometry, tiny widths.

    ``checkpoint``: one of the family's ``real_checkpoints`` (default its first). Built in memory
    (no save/load: the grid depends on the processor and the vision config only) and cached per
    process; do not modify it."""
    from gaspprobe.models.registry import adapter_class

    cls = adapter_class(arch)
    key = (arch, checkpoint, int(seed))
    with _LOCK:
        if key not in _REAL:
            model, processor = cls.build_real_parts(checkpoint, seed)
            name = cls._check_real(checkpoint) or f"{arch} (tiny)"
            _REAL[key] = cls(model.float(), processor, model_id=f"real-geometry:{name}")
        return _REAL[key]


def real_settings() -> list[tuple[str, str | None]]:
    """(model_type, checkpoint) of every registered family's real settings (checkpoint None: the
    family's tiny model already keeps its real checkpoint's geometry)."""
    from gaspprobe.models.registry import ADAPTERS

    out = []
    for name in ADAPTERS.names():
        cks = ADAPTERS.get(name).real_checkpoints
        out += [(name, c) for c in cks] or [(name, None)]
    return out
