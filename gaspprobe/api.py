"""The Python API that the CLI calls: ``probe``, ``train``, ``bench``, ``report``, ``loop``.

Each is a thin, lazily-imported front door to the subpackage that owns the work, so that
``import gaspprobe`` stays cheap and a notebook user calls exactly what the CLI calls.
(The subpackages are named ``probing``/``training``/``benchmarking``/``reporting`` so that the
functions ``gaspprobe.probe`` etc. are never shadowed by a submodule of the same name.)
"""

from __future__ import annotations

from typing import Any


def probe(model: Any, scenes: Any, recipe: Any = None, **overrides: Any):
    """Per-layer correspondence / robustness / depth diagnostics -> ``ProbeResult``.

    See :func:`gaspprobe.probing.run.probe`."""
    from gaspprobe.probing.run import probe as _probe

    return _probe(model, scenes, recipe, **overrides)


def train(model: Any, scenes: Any, out: Any, config: Any = None, **overrides: Any):
    """GASP training. See :func:`gaspprobe.training.trainer.train`."""
    from gaspprobe.training.trainer import train as _train

    return _train(model, scenes, out, config, **overrides)


def bench(model: Any, benchmark: str, data: Any, out: Any, **options: Any):
    """Run a benchmark. See :func:`gaspprobe.benchmarking.runner.run`."""
    from gaspprobe.benchmarking.runner import run as _run

    return _run(model, benchmark, data, out, **options)


def report(runs: Any, out: Any, **options: Any):
    """Comparison report from probe/train/bench runs. See :func:`gaspprobe.reporting.report.report`."""
    from gaspprobe.reporting.report import report as _report

    return _report(runs, out, **options)


def loop(out: Any, **options: Any):
    """The whole loop: scenes -> base probe -> GASP train -> probe -> bench -> report."""
    from gaspprobe.pipeline import loop as _loop

    return _loop(out, **options)
