"""CLI: ``gaspprobe train`` (GASP training). Thin: flags -> TrainConfig -> ``training.trainer.train``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from gaspprobe.cli._common import console, set_threads
from gaspprobe.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to the main app."""

    @app.command("train")
    def train_cmd(
        model: str = typer.Option(..., "--model", "-m", help="Hub id or local model folder (e.g. from `gaspprobe model tiny`)."),
        scenes: List[Path] = typer.Option(..., "--scenes", "-s",
                                          help="Training scenes folder (`gaspprobe scenes make` or a dataset); repeat "
                                               "for several sources (named by folder)."),
        source_weight: List[str] = typer.Option([], "--source-weight",
                                                help="NAME=W mixing weight of a scene source (repeatable)."),
        num_workers: Optional[int] = typer.Option(None, "--num-workers",
                                                  help="DataLoader workers building clips and GT matches."),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder to write."),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML/YAML TrainConfig (see docs/training.md)."),
        resume: bool = typer.Option(True, "--resume/--no-resume", hidden=True,
                                    help="Kept for old scripts: an unfinished run with the same config always resumes."),
        force: bool = typer.Option(False, "--force", help="Start afresh over a complete run or one with another config."),
        label: Optional[str] = typer.Option(None, "--label", help="The model's label in reports (manifest model_label)."),
        lora_targets: Optional[str] = typer.Option(None, "--lora-targets",
                                                   help="LoRA module regex (default: the family's language-model linears)."),
        full: Optional[bool] = typer.Option(None, "--full/--lora", help="Full fine-tuning of the LLM instead of LoRA."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps."),
        lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Clips per micro-batch per process."),
        grad_accum: Optional[int] = typer.Option(None, "--grad-accum", help="Micro-batches per optimizer step."),
        frames: Optional[int] = typer.Option(None, "--frames", help="Frames per clip."),
        lora_rank: Optional[int] = typer.Option(None, "--lora-rank", help="LoRA rank."),
        vision: Optional[str] = typer.Option(None, "--vision", help="auto | none | projector | tower."),
        layers: Optional[str] = typer.Option(None, "--layers", help="Supervised layers, e.g. 'all' or 'llm.2-llm.5'."),
        head_init: Optional[str] = typer.Option(None, "--head-init", help="svd | random."),
        mixed_precision: Optional[str] = typer.Option(None, "--mixed-precision", help="no | bf16 | fp16."),
        time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Stop after this many seconds."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed."),
        threads: Optional[int] = typer.Option(None, "--threads", help="torch intra-op threads."),
        modality: Optional[str] = typer.Option(None, "--modality", help="images (default) or video: each clip fed "
                                                                       "as one video through the family's video processor."),
        min_pixels: Optional[int] = typer.Option(None, "--min-pixels", help="Processor pixel budget: lower bound "
                                                 "of a frame's area (saved with the trained model)."),
        max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Processor pixel budget: upper bound "
                                                 "of a frame's area (saved with the trained model)."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
    ) -> None:
        """Train GASP heads + LoRA on scenes with known geometry; writes RUN/model (merged), heads, logs.

        Rerunning on an interrupted run folder with the same config continues it from its newest
        checkpoint; on a complete one it does nothing; another config is refused (use --force or a
        new --out)."""
        from gaspprobe.training.trainer import resolve_config, train

        set_threads(threads)
        weights = {}
        for kv in source_weight:
            name, sep, w = kv.partition("=")
            try:
                weights[name] = float(w)
            except ValueError:
                sep = ""
            if not sep or not name:
                raise ConfigError(f"--source-weight: expected NAME=NUMBER, got {kv!r}")
        cfg = resolve_config(
            config, full=full, steps=steps, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
            frames_per_clip=frames, lora_rank=lora_rank, lora_targets=lora_targets, vision=vision, layers=layers,
            head_init=head_init,
            mixed_precision=mixed_precision, time_limit_s=time_limit, seed=seed,
            threads=threads, num_workers=num_workers, source_weights=weights or None, min_pixels=min_pixels,
            max_pixels=max_pixels, modality=modality)
        res = train(model, scenes[0] if len(scenes) == 1 else list(scenes), out, cfg, label=label, force=force,
                    progress=progress)
        if int(os.environ.get("RANK", "0")) != 0:      # multi-process: the main process reports
            return
        s = res.summary
        if res.skipped:
            console.print(f"[yellow]{out}: already complete with this config; nothing to do[/]")
        from rich.table import Table

        t = Table(title=f"GASP training: {out}")
        t.add_column("item")
        t.add_column("value")
        t.add_row("steps", str(s.get("steps")))
        if s.get("final_loss") is not None:
            t.add_row("final loss (last 20 steps)", f"{s['final_loss']:.4f}")
        if s.get("lora_targets"):
            t.add_row("LoRA targets", s["lora_targets"])
        if s.get("val_peak_accuracy") is not None:
            t.add_row("validation peak raw acc (r=0)", f"{s['val_peak_accuracy']:.3f} at {s['val_peak_layer']}")
        t.add_row("trained", f"{s.get('trainable_parameters')} (vision: {s.get('vision')})")
        t.add_row("model", str(res.model_dir))
        t.add_row("heads", str(res.heads_path))
        console.print(t)
