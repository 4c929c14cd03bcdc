"""Reports: read probe/train/bench run folders and write a self-contained HTML + Markdown report
with paper-column figures.

Start at :func:`gaspprobe.reporting.report.report` (``gaspprobe report RUN ... --out DIR``). It is
split along three seams: **collect** (``runs``: discover + validate run folders, pair base -> GASP;
``collect``: the numbers the runs computed, as tidy tables), **present** (``present``: tables and
sections; ``plots``: seaborn figures) and **publish** (``publish``: jinja2 templates of
``reports/templates/`` -> HTML, Markdown, report.json, written through the run kernel).
"""

from __future__ import annotations


def report(runs, out, **options):
    """See :func:`gaspprobe.reporting.report.report`."""
    from gaspprobe.reporting.report import report as _report

    return _report(runs, out, **options)


__all__ = ["report"]
