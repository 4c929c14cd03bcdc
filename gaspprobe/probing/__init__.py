"""The probe: per-layer multi-view correspondence accuracy, temporal robustness, depth probe, oracles.

Start at :func:`gaspprobe.probing.run.probe` (``gaspprobe.probe(model, scenes, recipe)``; the CLI
is ``gaspprobe probe``). Modules:

- :mod:`~gaspprobe.probing.recipe`: the typed :class:`Recipe` (``recipes/*.toml``: gasp, paper, quick);
- :mod:`~gaspprobe.probing.features`: the feature-source registry (hidden, attention, q/k/v, oracles);
- :mod:`~gaspprobe.probing.match`: batched nearest-neighbour matching, accuracy at r, Spearman;
- :mod:`~gaspprobe.probing.metrics`: the probe-metric registry, each metric with a naive reference;
- :mod:`~gaspprobe.probing.temporal`: pair sampling by frame gap (robustness: :mod:`gaspprobe.tables`);
- :mod:`~gaspprobe.probing.shard`: scene sharding under torchrun / accelerate;
- :mod:`~gaspprobe.probing.depth`: the closed-form ridge depth probe (streamed statistics);
- :mod:`~gaspprobe.probing.oracle`: ``oracle:xyz`` (geometric upper bound), ``oracle:random`` (chance);
- :mod:`~gaspprobe.probing.run`: the runner (``probe``, ``probe_many``), tables, summary;
  :mod:`~gaspprobe.probing.plots`: the run's PNGs and ``paper_figure``.

Importing this package is cheap; torch loads with the submodules.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name in ("probe", "probe_many", "ProbeResult", "load_result"):
        from gaspprobe.probing import run

        return getattr(run, name)
    if name in ("Recipe", "load_recipe"):
        from gaspprobe.probing import recipe

        return getattr(recipe, name)
    raise AttributeError(f"module 'gaspprobe.probing' has no attribute {name!r}")


__all__ = ["probe", "probe_many", "ProbeResult", "load_result", "Recipe", "load_recipe"]
