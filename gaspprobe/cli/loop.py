"""CLI: ``gaspprobe loop``: base VLM -> diagnose -> GASP train -> diagnose -> benchmark -> report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("loop")
    def loop(
        out: Path = typer.Option(Path("runs/loop"), "--out", help="Folder for every stage of the loop."),
        model: Optional[str] = typer.Option(None, "--model", help="Base model (hub id or dir); default: a tiny one."),
        arch: str = typer.Option("qwen2_5_vl", "--arch", help="Tiny model architecture (without --model)."),
        scenes: Optional[Path] = typer.Option(None, "--scenes", help="Training scenes (default: synthetic)."),
        heldout: Optional[Path] = typer.Option(None, "--heldout", help="Held-out scenes (default: synthetic)."),
        benchmarks: Optional[list[str]] = typer.Option(None, "--benchmarks", help="Benchmarks (repeatable); "
                                                       "default: synthetic_vsi, synthetic_allangles."),
        vsibench_data: Optional[str] = typer.Option(None, "--vsibench-data", help="VSI-Bench parquet or HF id."),
        video_root: Optional[Path] = typer.Option(None, "--video-root", help="VSI-Bench video root."),
        allangles_data: Optional[Path] = typer.Option(None, "--allangles-data", help="All-Angles data.json."),
        image_root: Optional[Path] = typer.Option(None, "--image-root", help="All-Angles image root."),
        train_config: Optional[Path] = typer.Option(None, "--train-config", help="GASP training config file."),
        train_steps: Optional[int] = typer.Option(None, "--train-steps", help="Override training steps."),
        train_minutes: Optional[float] = typer.Option(None, "--train-minutes", help="Wall-clock cap of training."),
        camera: Optional[str] = typer.Option(None, "--camera", help="Synthetic camera path: arc or video."),
        max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Processor pixel budget for every stage."),
        bench_limit: Optional[int] = typer.Option(None, "--bench-limit", help="Questions per benchmark cap."),
        seed: int = typer.Option(0, "--seed", help="Seed of everything."),
        quick: bool = typer.Option(False, "--quick", help="A ~1 minute first look (= --preset quick)."),
        preset: str = typer.Option("default", "--preset", help="default | quick | headline (the toy GASP "
                                   "headline: 96 + 16 scenes, 10 minutes of training, headline.json) | paper "
                                   "(issue 14's protocol: paper recipe, video scenes, 16x16 tokens)."),
    ) -> None:
        """Run (or resume) the whole loop; finished stages with the same config are skipped."""
        from gaspprobe.cli._common import console
        from gaspprobe.pipeline import LoopConfig, loop as run_loop

        over = dict(model=model, arch=arch, scenes=None if scenes is None else str(scenes),
                    heldout=None if heldout is None else str(heldout), benchmarks=benchmarks,
                    vsibench_data=vsibench_data, video_root=None if video_root is None else str(video_root),
                    allangles_data=None if allangles_data is None else str(allangles_data),
                    image_root=None if image_root is None else str(image_root),
                    train_config=None if train_config is None else str(train_config),
                    train_steps=train_steps, bench_limit=bench_limit, seed=seed, quick=quick,
                    train_minutes=train_minutes, camera=camera, max_pixels=max_pixels,
                    preset=preset)
        from gaspprobe import config as C

        over = {k: v for k, v in over.items() if v is not None}
        cfg = C.replace(LoopConfig(), **over)
        res = run_loop(out, cfg, log=lambda m: console.print(m, markup=False, highlight=False))
        console.print(f"[bold green]loop complete[/]: report at {res.report}")
        if getattr(res, "headline", None) is not None:
            console.print((out / "headline.md").read_text(encoding="utf-8"), markup=False, highlight=False)
