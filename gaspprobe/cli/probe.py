"""CLI: ``gaspprobe probe --model M --scenes DIR --out RUN [--recipe gasp] [recipe flags]``.

Thin: flags -> recipe overrides -> :func:`gaspprobe.probing.run.probe` (with a rich progress bar
over scenes) -> a rich table of the summary. Every recipe key has a flag; a flag left out keeps
the recipe's value.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from gaspprobe.errors import ConfigError


def _ints(text: Optional[str], flag: str) -> Optional[list[int]]:
    if text is None:
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise ConfigError(f"{flag}: expected comma-separated integers, got {text!r}") from None


def _strs(text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    return [t for t in text.replace(" ", "").split(",") if t]


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def print_summary(summary: dict) -> None:
    """A rich table of a probe summary: one row per layer, then the headline numbers."""
    from rich.table import Table

    from gaspprobe.cli._common import console

    att = summary.get("attention") or {}
    dp = summary.get("depth_probe") or {}
    mode = summary.get("mode", "hidden")
    t = Table(title=f"probe: {summary.get('model')}  ({summary.get('n_scenes')} scenes, "
                    f"{summary.get('n_pairs')} pairs, {summary.get('n_matches')} GT matches)")
    t.add_column("layer")
    for rk in summary.get("accuracy", {}):
        t.add_column(f"{mode} acc {rk.replace('r', 'r=')}", justify="right")
    if att:
        t.add_column("attention acc r=0", justify="right")
    t.add_column("conf. spearman", justify="right")
    if dp:
        t.add_column("depth AbsRel", justify="right")
        t.add_column("depth δ<1.25", justify="right")
    for layer in summary.get("layers", []):
        mark = " *" if layer == summary.get("peak_layer") else ""
        row = [layer + mark]
        row += [_fmt(v.get(layer)) for v in summary.get("accuracy", {}).values()]
        if att:
            row.append(_fmt(att.get("accuracy", {}).get("r0", {}).get(layer)))
        row.append(_fmt(summary.get("confidence_spearman", {}).get(layer)))
        if dp:
            d = dp.get(layer) or {}
            row += [_fmt(d.get("absrel")), _fmt(d.get("delta1"))]
        t.add_row(*row)
    console.print(t)
    hr = summary.get("headline_r", 0)
    unit = summary.get("patch_unit", "llm_token")
    rob = _fmt(summary.get("robustness"))
    if summary.get("robustness_reason"):
        rob += f" (n/a: {summary['robustness_reason']})"
    console.print(
        f"peak ({mode}, PCK@{hr} {unit}): [bold]{_fmt(summary.get('peak_accuracy'))}[/] at "
        f"{summary.get('peak_layer')}   chance: {_fmt(summary.get('headline_chance', summary.get('chance')))}"
        f"   layer mean: {_fmt(summary.get('layer_mean_accuracy'))}"
        f"   gap-balanced: {_fmt(summary.get('gap_balanced_accuracy'))}   robustness: {rob}"
        + (f"   PCK_{summary.get('robustness_max_gap')}/PCK_1: {_fmt(summary.get('robustness_at_max_gap'))}"
           if summary.get("robustness_max_gap") else ""))
    bg = summary.get("accuracy_by_gap") or {}
    if bg:
        console.print("by gap at peak: " + ", ".join(f"g={g}: {_fmt(v)}" for g, v in bg.items()))
    if att:
        console.print(f"attention peak: {_fmt(att.get('peak_accuracy'))} at {att.get('peak_layer')}"
                      f"   robustness: {_fmt(att.get('robustness'))}")


def register(app: typer.Typer) -> None:
    """Add the ``probe`` command to the main app."""

    @app.command("probe")
    def probe_cmd(
        model: list[str] = typer.Option(..., "--model", "-m",
                                        help="hub id, model folder, or oracle:xyz / oracle:random[:ROWSxCOLS]; "
                                             "repeat for a comparison run (one probe run per model in --out)"),
        scenes: Path = typer.Option(..., "--scenes", "-s", help="a scene folder or a folder of scenes"),
        out: Path = typer.Option(..., "--out", "-o", help="run folder to write"),
        recipe: str = typer.Option("gasp", "--recipe", "-r",
                                   help="recipe name under gaspprobe/probing/recipes/ (gasp, paper, quick) or a .toml path"),
        frames_per_clip: Optional[int] = typer.Option(None, help="frames per forward pass"),
        gaps: Optional[str] = typer.Option(None, help="frame gaps, e.g. 1,2,4,8,16,24"),
        pairs_per_gap: Optional[int] = typer.Option(None, help="pairs per scene and gap"),
        both_directions: Optional[bool] = typer.Option(None, "--both-directions/--one-direction",
                                                       help="also match each pair in reverse"),
        depth_tol: Optional[float] = typer.Option(None, help="relative depth tolerance of GT visibility"),
        tolerances: Optional[str] = typer.Option(None, help="tolerances r in patches, e.g. 0,1,2"),
        headline_r: Optional[int] = typer.Option(None, help="tolerance of the headline number (peak layer, "
                                                            "robustness); the paper: 2"),
        patch_unit: Optional[str] = typer.Option(None, help="what a patch is: llm_token or vision_patch"),
        frame_stride: Optional[int] = typer.Option(None, help="take every k-th frame of a scene into the clip"),
        fps: Optional[float] = typer.Option(None, help="frame rate of the scene frames (recorded; Δt in seconds)"),
        skip_long_gaps: Optional[bool] = typer.Option(None, "--skip-long-gaps/--require-all-gaps",
                                                      help="skip gaps a clip cannot hold / refuse them"),
        modes: Optional[str] = typer.Option(None, help="feature sources: hidden,attention,q,k,v,q_rope,k_rope,"
                                                      "oracle:xyz,oracle:random"),
        conf_temperature: Optional[float] = typer.Option(None, help="hidden-mode confidence temperature"),
        layers: Optional[str] = typer.Option(None, help="layers to probe, e.g. vision,llm.0 (default all)"),
        per_frame: Optional[bool] = typer.Option(None, "--per-frame/--joint",
                                                 help="one forward pass per frame / all frames in one"),
        depth_probe: Optional[bool] = typer.Option(None, "--depth-probe/--no-depth-probe",
                                                   help="fit the ridge depth probe"),
        ridge_lambda: Optional[float] = typer.Option(None, help="relative ridge penalty"),
        depth_train_fraction: Optional[float] = typer.Option(None, help="fraction of scenes to fit the depth probe"),
        seed: Optional[int] = typer.Option(None, help="pair-sampling seed"),
        modality: Optional[str] = typer.Option(None, help="images (each frame an image) or video (the clip as one "
                                                          "video through the family's video processor)"),
        video_fps: Optional[float] = typer.Option(None, help="with --modality video: the frame rate the model is "
                                                             "told (default fps/frame_stride, else 2.0)"),
        min_pixels: Optional[int] = typer.Option(None, help="processor pixel budget: lower bound of a frame's area"),
        max_pixels: Optional[int] = typer.Option(None, help="processor pixel budget: upper bound of a frame's area "
                                                 "(see `gaspprobe model inspect` for tokens per frame)"),
        overwrite: bool = typer.Option(False, help="replace a complete run made with other settings"),
        label: Optional[list[str]] = typer.Option(None, help="a label for the model in reports (e.g. base, "
                                                             "gasp); one per --model"),
        device: str = typer.Option("cpu", help="device to load the model on (cpu, cuda, cuda:1, ...)"),
        dtype: str = typer.Option("auto", help="model dtype: auto, float32, bfloat16, float16"),
        threads: Optional[int] = typer.Option(1, help="torch CPU threads (1 is fastest on a busy box)"),
    ) -> None:
        """Per-layer multi-view correspondence accuracy, temporal robustness and depth probe."""
        from gaspprobe.cli._common import console, set_threads
        from gaspprobe.probing.run import probe

        set_threads(threads)
        overrides = dict(
            frames_per_clip=frames_per_clip, gaps=_ints(gaps, "--gaps"), pairs_per_gap=pairs_per_gap,
            both_directions=both_directions, depth_tol=depth_tol,
            tolerances=_ints(tolerances, "--tolerances"), modes=_strs(modes), headline_r=headline_r,
            patch_unit=patch_unit, frame_stride=frame_stride, fps=fps, skip_long_gaps=skip_long_gaps,
            conf_temperature=conf_temperature, layers=_strs(layers), per_frame=per_frame,
            depth_probe=depth_probe, ridge_lambda=ridge_lambda,
            depth_train_fraction=depth_train_fraction, seed=seed, min_pixels=min_pixels, max_pixels=max_pixels,
            modality=modality, video_fps=video_fps)
        if len(model) > 1:
            from gaspprobe.probing.run import probe_many

            for res in probe_many(model, scenes, recipe, out=out, labels=label or None, progress=True,
                                  overwrite=overwrite, device=device, dtype=dtype, **overrides):
                print_summary(res.summary)
            console.print(f"wrote {out}: one probe run per model, comparison.parquet, paper_figure.png/.pdf")
            return
        if label and len(label) > 1:
            raise ConfigError(f"--label: {len(label)} labels for one --model")
        res = probe(model[0], scenes, recipe, out=out, progress=True, overwrite=overwrite, device=device,
                    dtype=dtype, label=label[0] if label else None, **overrides)
        if res.cached:
            console.print(f"[dim]{out}: complete run with the same model, scenes and recipe; not recomputed[/]")
        print_summary(res.summary)
        console.print(f"wrote {out}/probe.parquet, summary.json, manifest.json, "
                      f"{', '.join(p.name for p in res.figures)}")
