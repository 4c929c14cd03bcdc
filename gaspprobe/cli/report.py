"""CLI: ``gaspprobe report RUN [RUN ...] --out DIR`` (thin: arguments -> ``gaspprobe.api.report``)."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from gaspprobe.cli._common import console


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to the main app."""

    @app.command("report")
    def report_cmd(
        runs: List[Path] = typer.Argument(..., help="Probe, train and bench run folders, or folders "
                                          "holding them (e.g. a loop output)."),
        out: Path = typer.Option(..., "--out", "-o", help="Report folder (created, or replaced if "
                                 "it holds an earlier report)."),
        title: str = typer.Option("gaspprobe report", help="Page title."),
        allow_mismatch: bool = typer.Option(False, "--allow-mismatch", help="Report runs of "
                                            "different recipes anyway, with a warning."),
        paper: bool = typer.Option(True, "--paper/--no-paper", help="Show the GASP paper's "
                                   "reported numbers as labelled reference lines/rows."),
        pdf: bool = typer.Option(True, "--pdf/--no-pdf", help="Also save figures as PDF."),
    ) -> None:
        """Comparison report (report.html, self-contained; report.md; figures) from runs."""
        from gaspprobe.api import report

        html = report(runs, out, title=title, allow_mismatch=allow_mismatch, paper=paper,
                      formats=("png", "pdf") if pdf else ("png",))
        console.print(f"report: [bold]{html}[/bold]  (and {html.with_name('report.md')})")
