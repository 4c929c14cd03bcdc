"""CLI: ``gaspprobe bench run | score | synthesize | list`` (thin: args -> library -> rich print)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gaspprobe.cli._common import console, set_threads

app = typer.Typer(no_args_is_help=True)


def _print_summary(s: dict, run_dir: Path) -> None:
    import os

    from rich.table import Table

    if os.environ.get("RANK", "0") != "0":  # sharded run: only the main process prints
        return
    t = Table(title=f"{s['benchmark']} (card v{s['card_version']}) - {s['model']}", show_header=True)
    t.add_column("task")
    t.add_column("score", justify="right")
    t.add_column("n", justify="right")
    for task, v in s["tasks"].items():
        t.add_row(task, f"{v:.1f}", str(s.get("n_per_task", {}).get(task, "")))
    ov = s["overall"]
    t.add_row("[bold]overall", f"[bold]{ov:.1f}" if ov is not None else "-", str(s["n"]))
    console.print(t)
    extra = f"frames={s.get('frames')} prompt={s.get('prompt_variant')} parser={s.get('parser')}"
    console.print(f"{extra}  failed={s['n_failed']}  parse failures={s['parse_failures']}  -> {run_dir}")


@app.command("run")
def run_cmd(
    model: str = typer.Option(..., "--model", help="Model id/dir, or oracle:answers, baseline:frequency, baseline:random."),
    benchmark: str = typer.Option(..., "--benchmark", help="Card name (gaspprobe bench list) or a card YAML."),
    data: str = typer.Option(..., "--data", help="Question file/folder in the benchmark's schema, or 'hf'."),
    out: Path = typer.Option(..., "--out", help="Run folder (a rerun resumes it)."),
    video_root: Optional[Path] = typer.Option(None, "--video-root", help="VSI videos: {root}/{dataset}/{scene}.mp4."),
    image_root: Optional[Path] = typer.Option(None, "--image-root", help="All-Angles images root."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames per video (default: the card's, 32)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N questions."),
    batch_size: int = typer.Option(1, "--batch-size", help="Samples per generate call."),
    prompt_variant: Optional[str] = typer.Option(None, "--prompt-variant", help="Named non-default prompt."),
    parser: Optional[str] = typer.Option(None, "--parser", help="Named non-default parser."),
    seed: int = typer.Option(0, "--seed", help="Seed (baseline:random)."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Optional answer extractor 'module:function' "
                                        "for unparsed multiple-choice outputs (off: official rules only)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda if any)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """Run a model on a benchmark: predictions.jsonl, scores.parquet, summary.json, manifest.json."""
    set_threads(threads)
    from gaspprobe.api import bench

    r = bench(model, benchmark, data, out, video_root=video_root, image_root=image_root, frames=frames,
              limit=limit, batch_size=batch_size, prompt_variant=prompt_variant, parser=parser, seed=seed,
              device=device, judge=judge)
    _print_summary(r.summary, r.run_dir)


@app.command("score")
def score_cmd(
    benchmark: str = typer.Option(..., "--benchmark", help="Card name or card YAML."),
    data: str = typer.Option(..., "--data", help="Question file/folder (or 'hf')."),
    predictions: Path = typer.Option(..., "--predictions", help="Our predictions.jsonl, an lmms-eval samples jsonl, "
                                     "or a VLMEvalKit .tsv/.csv (index, prediction)."),
    out: Path = typer.Option(..., "--out", help="Run folder for the rescored results."),
    prompt_variant: Optional[str] = typer.Option(None, "--prompt-variant"),
    parser: Optional[str] = typer.Option(None, "--parser"),
    model: Optional[str] = typer.Option(None, "--model", help="Model name to record (default: file stem)."),
) -> None:
    """Rescore predictions made elsewhere with the official parsing and aggregation."""
    from gaspprobe.benchmarking.runner import score

    r = score(benchmark, data, predictions, out, prompt_variant=prompt_variant, parser=parser, model=model)
    _print_summary(r.summary, r.run_dir)


@app.command("synthesize")
def synthesize_cmd(
    scenes: Path = typer.Option(..., "--scenes", help="Folder of scenes (gaspprobe scenes make)."),
    out: Path = typer.Option(..., "--out", help="Output data folder."),
    format: str = typer.Option("vsibench", "--format", help="vsibench or allangles."),
    seed: int = typer.Option(0, "--seed", help="Seed for option shuffling and question sampling."),
    views: int = typer.Option(4, "--views", help="All-Angles: views per scene."),
    fps: int = typer.Option(10, "--fps", help="VSI: video frame rate."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Keep only this many evenly spaced frames per scene."),
    per_type: int = typer.Option(2, "--per-type", help="Questions per type (VSI) / category (All-Angles) per scene."),
) -> None:
    """Write a synthetic benchmark in the exact schema and layout of VSI-Bench or All-Angles Bench."""
    from gaspprobe.benchmarking.synthetic import synthesize

    info = synthesize(scenes, out, format=format, seed=seed, views=views, fps=fps, frames=frames, per_type=per_type)
    console.print(f"{info['n']} questions ({', '.join(f'{k}: {v}' for k, v in info['per_type'].items())}) -> {out}")


@app.command("list")
def list_cmd() -> None:
    """Registered benchmarks with their card version, format, parser and default prompt."""
    from rich.table import Table

    from gaspprobe.benchmarking.card import load_card
    from gaspprobe.benchmarking.registry import BENCHMARKS

    t = Table(show_header=True)
    for c in ("name", "version", "format", "dataset", "parser (default)", "prompt (default)", "frames"):
        t.add_column(c)
    for name in BENCHMARKS.names():
        c = load_card(name)
        t.add_row(name, c.version, c.format, c.dataset.hf_id or "synthetic", c.parser, c.prompt_variant,
                  str(c.frames or "-"))
    console.print(t)
