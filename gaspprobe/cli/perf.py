"""CLI: ``gaspprobe perf``: the speed and memory suite (see :mod:`gaspprobe.perf`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("perf")
    def perf(
        out: Path = typer.Option(Path("runs/perf"), "--out", help="Folder for perf.json and perf.md."),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda (bf16 + absolute times there)."),
        quick: bool = typer.Option(False, "--quick", help="Fewer repeats (a first look, noisier)."),
        only: Optional[list[str]] = typer.Option(None, "--only", help="Areas to run (repeatable): "
                                                 "scenes, capture, probe, train, bench."),
    ) -> None:
        """Run benchmarks/perf and print every figure as a ratio with its target."""
        from rich.table import Table

        from gaspprobe import io
        from gaspprobe.cli._common import console
        from gaspprobe.errors import GaspError
        from gaspprobe.perf import AREAS, run_perf, to_markdown

        areas = tuple(only) if only else AREAS
        bad = [a for a in areas if a not in AREAS]
        if bad:
            raise GaspError(f"--only: unknown area {bad[0]!r}; known: {', '.join(AREAS)}")
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise GaspError("--device cuda: no CUDA device is available here")
        with console.status("running perf benchmarks") as st:
            res = run_perf(areas, quick=quick, device=device, progress=lambda a: st.update(f"perf: {a}"))
        io.atomic_write_json(out / "perf.json", res)
        io.atomic_write_text(out / "perf.md", to_markdown(res))
        t = Table(title=f"gaspprobe perf ({device}{', quick' if quick else ''})")
        for c in ("figure", "value", "target", "pass"):
            t.add_column(c)
        for f in res["figures"]:
            if not f["target"] and f["key"].count(".") > 1:
                continue  # per-family / per-size details: in perf.json and perf.md
            v = f["value"]
            vs = f["note"][:60] if v is None else (f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}")
            mark = {True: "[green]pass", False: "[red]FAIL", None: ""}[f["passed"]]
            t.add_row(f["key"], vs, f["target"], mark)
        console.print(t)
        n_fail = sum(f["passed"] is False for f in res["figures"])
        console.print(f"{n_fail} figure(s) miss their target; details in {out / 'perf.md'} and {out / 'perf.json'}")
