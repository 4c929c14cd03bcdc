"""gaspprobe: probe and improve the 3D spatial awareness of vision-language models.

Start here:
- ``gaspprobe.scenes``: scenes with exact depth and poses, and ground-truth patch matches.
- ``gaspprobe.models``: adapters for Hugging Face VLMs (token grids, per-layer capture).
- ``gaspprobe.probe(model, scenes, recipe)``: per-layer correspondence diagnostics.
- ``gaspprobe.train(...)``: GASP training (heads on every layer, InfoNCE + depth).
- ``gaspprobe.bench(...)``: VSI-Bench / All-Angles Bench / synthetic benchmarks.
- ``gaspprobe.report(...)`` and ``gaspprobe.loop(...)``: comparison reports, the whole loop.

Importing this package is cheap: torch and transformers load only when a function needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {"probe", "train", "bench", "report", "loop"}


def __getattr__(name: str):
    # Lazy: `gaspprobe.probe(...)` imports the heavy API only when first used.
    if name in _API:
        from gaspprobe import api

        return getattr(api, name)
    raise AttributeError(f"module 'gaspprobe' has no attribute {name!r}")


__all__ = sorted(_API | {"__version__"})
