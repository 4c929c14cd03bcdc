"""CLI: ``gaspprobe bench run | score | synthesize | list`` (thin: args -> library -> rich print)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gaspprobe.cli._common import console, err_console, set_threads

app = typer.Typer(no_args_is_help=True)


def _f(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _ci(ci: dict | None, task: str | None) -> str:
    if not ci:
        return ""
    lo, hi = ci.get("overall") if task is None else ci.get("tasks", {}).get(task, [None, None])
    return "" if lo is None else f"[{lo:.1f}, {hi:.1f}]"


def _print_summary(s: dict, run_dir: Path) -> None:
    import os

    from rich.table import Table

    if os.environ.get("RANK", "0") != "0":  # sharded run: only the main process prints
        return
    scorer = s.get("scorer", "generate")
    note = "" if s.get("official", True) else f" [yellow]scorer: {s.get('scorer_label', scorer)}"
    t = Table(title=f"{s['benchmark']} (card v{s['card_version']}) - {s['model']} - profile "
              f"{s.get('profile') or '-'}{note}", show_header=True)
    for c in ("task", "score", "95% CI", "n", "chance", "frequent", "blind"):
        t.add_column(c, justify="left" if c == "task" else "right")
    bl = s.get("baselines") or {}

    def base(kind: str, task: str | None) -> str:
        b = bl.get(kind)
        if not b:
            return "-"
        return _f(b.get("overall") if task is None else b.get("tasks", {}).get(task))

    for task, v in s["tasks"].items():
        t.add_row(task, _f(v), _ci(s.get("ci"), task), str(s.get("n_per_task", {}).get(task, "")),
                  base("chance", task), base("frequency", task), base("blind", task))
    t.add_row("[bold]overall", f"[bold]{_f(s['overall'])}", _ci(s.get("ci"), None), str(s["n"]),
              base("chance", None), base("frequency", None), base("blind", None))
    console.print(t)
    extra = f"frames={s.get('frames')} prompt={s.get('prompt_variant')} parser={s.get('parser')}"
    console.print(f"{extra}  failed={s['n_failed']}  parse failures={s['parse_failures']}  -> {run_dir}")
    fails = list((s.get("failures") or {}).items())
    for sid, why in fails[:5]:  # one line each, naming the file, row and field
        err_console.print(f"failed sample {sid}: {why}", markup=False, highlight=False, soft_wrap=True)
    if len(fails) > 5 or s["n_failed"] > len(fails[:5]):
        err_console.print(f"... {s['n_failed'] - min(len(fails), 5)} more in {run_dir / 'summary.json'}",
                          markup=False, highlight=False, soft_wrap=True)


class _Bar:
    """The runner's progress callback drawn as a rich bar (the library never imports the CLI)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("running score {task.fields[score]}"), TimeRemainingColumn(),
                             console=console, transient=False)
        self.task = None

    def __call__(self, ev: dict) -> None:
        if self.task is None:
            self.prog.start()
            self.task = self.prog.add_task(ev["benchmark"], total=ev["total"], score="-")
        sc = ev.get("score")
        self.prog.update(self.task, completed=ev["done"], score="-" if sc is None else f"{sc:.1f}")

    def close(self) -> None:
        if self.task is not None:
            self.prog.stop()


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
    profile: Optional[str] = typer.Option(None, "--profile", help="Harness profile: gaspprobe (default), "
                                          "lmms-eval (its default classes), lmms-eval-simple (--force_simple), "
                                          "vlmevalkit, official."),
    scorer: str = typer.Option("generate", "--scorer", help="generate (official) or likelihood (NON-official: "
                               "multiple choice by option likelihood)."),
    blind: Optional[bool] = typer.Option(None, "--blind/--no-blind", help="Also run the model without images/video "
                                         "(the blind baseline; default on for real models)."),
    label: Optional[str] = typer.Option(None, "--label", help="Label recorded in the manifest (e.g. base, gasp)."),
    force: bool = typer.Option(False, "--force", help="Start over even if --out holds a finished or other run."),
    wait: bool = typer.Option(False, "--wait", help="Wait for another process using --out instead of refusing."),
    min_pixels: Optional[int] = typer.Option(None, "--min-pixels", help="Processor pixel budget: lower bound of a frame's area."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Processor pixel budget: upper bound of a frame's area."),
    modality: str = typer.Option("images", "--modality", help="Default profile: feed each video as its frames "
                                 "(images) or as one video through the family's video path (video)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
) -> None:
    """Run a model on a benchmark: predictions.jsonl, scores.parquet, summary.json, manifest.json."""
    set_threads(threads)
    from gaspprobe.api import bench

    bar = _Bar() if progress else None
    try:
        r = bench(model, benchmark, data, out, video_root=video_root, image_root=image_root, frames=frames,
                  limit=limit, batch_size=batch_size, prompt_variant=prompt_variant, parser=parser, seed=seed,
                  device=device, judge=judge, profile=profile, scorer=scorer, blind=blind, label=label,
                  force=force, wait=wait, progress=bar, modality=modality,
                  pixels={k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v} or None)
    finally:
        if bar is not None:
            bar.close()
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
    label: Optional[str] = typer.Option(None, "--label", help="Label recorded in the manifest."),
    force: bool = typer.Option(False, "--force", help="Replace a finished run in --out."),
) -> None:
    """Rescore predictions made elsewhere with the official parsing and aggregation."""
    from gaspprobe.benchmarking.rescoring import score

    r = score(benchmark, data, predictions, out, prompt_variant=prompt_variant, parser=parser, model=model,
              label=label, force=force)
    _print_summary(r.summary, r.run_dir)


@app.command("synthesize")
def synthesize_cmd(
    scenes: Path = typer.Option(..., "--scenes", help="Folder of scenes (gaspprobe scenes make)."),
    out: Path = typer.Option(..., "--out", help="Output data folder."),
    format: str = typer.Option("vsibench", "--format", help="vsibench, allangles or blink (the four spatial subtasks)."),
    seed: int = typer.Option(0, "--seed", help="Seed for option shuffling and question sampling."),
    views: int = typer.Option(4, "--views", help="All-Angles: views per scene."),
    fps: int = typer.Option(10, "--fps", help="VSI: video frame rate."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Keep only this many evenly spaced frames per scene."),
    per_type: int = typer.Option(2, "--per-type", help="Questions per type (VSI) / category (All-Angles) / subtask (BLINK) per scene."),
    force: bool = typer.Option(False, "--force", help="Rewrite even if --out already holds this data."),
) -> None:
    """Write a synthetic benchmark in the exact schema and layout of VSI-Bench, All-Angles Bench or BLINK."""
    from gaspprobe.benchmarking.synthetic import synthesize

    info = synthesize(scenes, out, format=format, seed=seed, views=views, fps=fps, frames=frames, per_type=per_type,
                      force=force)
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


def _who(x: dict) -> str:
    sc = "" if x["scorer"] == "generate" else f", scorer {x['scorer']} (non-official)"
    return f"{x['label'] or x['model']} (profile {x['profile'] or '-'}{sc})"


@app.command("compare")
def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="Two or more bench run folders of one benchmark: A (e.g. base) "
                                      "then B (e.g. gasp), or one model under several --profile runs."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap draws."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
) -> None:
    """Paired comparison of runs on the samples they share: per task A, B, delta, paired
    cluster-bootstrap 95% interval (* = excludes zero), McNemar's exact p (multiple choice). With
    more than two runs (e.g. one model under the harness profiles), their scores side by side, task
    by task, then each run against the first."""
    from rich.table import Table

    from gaspprobe.benchmarking.stats import compare_runs
    from gaspprobe.errors import ConfigError

    if len(runs) < 2:
        raise ConfigError("compare: give at least two run folders")
    results = [compare_runs(runs[0], r, n_boot=n_boot, seed=seed) for r in runs[1:]]
    if len(runs) > 2:
        side = Table(title=f"{results[0]['benchmark']}: {len(runs)} runs side by side (task scores)", show_header=True)
        side.add_column("task")
        heads = [results[0]["a"]] + [r["b"] for r in results]
        for k, h in enumerate(heads):
            side.add_column(f"{chr(65 + k)}: {_who(h)}", justify="right")
        for task in results[0]["tasks"]:
            side.add_row(task, _f(results[0]["tasks"][task]["a"]),
                         *[_f(r["tasks"].get(task, {}).get("b")) for r in results])
        side.add_row("[bold]overall", _f(results[0]["overall"]["a"]), *[_f(r["overall"]["b"]) for r in results])
        console.print(side)
    for k, r in enumerate(results):
        t = Table(title=f"{r['benchmark']}: {chr(66 + k)} = {_who(r['b'])} vs A = {_who(r['a'])}  ({r['n']} paired "
                  f"samples, {r['clusters']} clusters)", show_header=True)
        for c in ("task", "A", chr(66 + k), "delta", "95% CI of delta", "McNemar p"):
            t.add_column(c, justify="left" if c == "task" else "right")

        def add(name: str, x: dict) -> None:
            ci = "-" if x["delta_low"] is None else f"[{x['delta_low']:+.1f}, {x['delta_high']:+.1f}]"
            star = " *" if x["significant"] else ""
            p = "-" if x["mcnemar_p"] is None else f"{x['mcnemar_p']:.3g} ({x['a_only']}/{x['b_only']})"
            d = "-" if x["delta"] is None else f"{x['delta']:+.1f}{star}"
            t.add_row(name, _f(x["a"]), _f(x["b"]), d, ci, p)

        for task, x in r["tasks"].items():
            add(task, x)
        add("[bold]overall", r["overall"])
        console.print(t)
    console.print("* the paired bootstrap interval excludes zero; McNemar (A-only/B-only discordant) on "
                  "multiple-choice tasks")
