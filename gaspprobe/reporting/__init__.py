"""Reports: read probe/train/bench run folders and write a self-contained HTML + Markdown report
with paper-column figures.

Start at :func:`gaspprobe.reporting.report.report` (``gaspprobe report RUN ... --out DIR``).
Modules: ``runs`` (discover + validate run folders, pair base -> GASP), ``plots`` (seaborn
figures), ``render`` (HTML + Markdown), ``report`` (numbers, tables, atomic build).
"""

from __future__ import annotations


def report(runs, out, **options):
    """See :func:`gaspprobe.reporting.report.report`."""
    from gaspprobe.reporting.report import report as _report

    return _report(runs, out, **options)


__all__ = ["report"]
