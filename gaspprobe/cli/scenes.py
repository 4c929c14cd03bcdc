"""CLI: ``gaspprobe scenes make|show|check|convert|index|formats`` (thin: arguments -> :mod:`gaspprobe.scenes`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gaspprobe.errors import ConfigError, DataError

app = typer.Typer(no_args_is_help=True, help="Make, check and look at scenes.")


def _range(text: str, flag: str) -> tuple[int, int]:
    try:
        parts = [int(t) for t in text.replace(" ", "").replace("-", ",").split(",") if t]
    except ValueError:
        raise ConfigError(f"{flag}: expected LO,HI integers, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or parts[0] < 0 or parts[0] > parts[1]:
        raise ConfigError(f"{flag}: expected LO,HI with 0 <= LO <= HI, got {text!r}")
    return parts[0], parts[1]


@app.command("make")
def make(
    out: Path = typer.Argument(..., help="Output folder (one sub-folder per scene, ScanNet layout)."),
    n_scenes: int = typer.Option(8, "--n-scenes", min=1, help="Number of scenes."),
    frames: int = typer.Option(16, "--frames", min=1, help="Frames per scene."),
    size: int = typer.Option(448, "--size", min=8, help="Frame size S (S x S pixels)."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives the same bytes."),
    objects: str = typer.Option("4,12", "--objects", help="Objects per scene, LO,HI (inclusive)."),
    motion: float = typer.Option(0.25, "--motion", min=0.0, help="Fraction of a loop around the room the camera covers."),
    turn: float = typer.Option(25.0, "--turn", min=0.0, help="Camera yaw oscillation amplitude (degrees)."),
    threads: int = typer.Option(0, "--threads", help="torch threads (0: torch's default)."),
) -> None:
    """Generate procedural scenes (rooms, furniture, textures, camera paths) with exact depth."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gaspprobe.cli._common import console, set_threads
    from gaspprobe.scenes import make_scenes

    set_threads(threads)
    knobs = {"n_objects": _range(objects, "--objects"), "motion": motion, "turn": turn}
    with Progress(TextColumn("scenes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as prog:
        task = prog.add_task("scenes", total=n_scenes)
        paths = make_scenes(out, n_scenes=n_scenes, frames=frames, size=size, seed=seed,
                            progress=lambda done, total: prog.update(task, completed=done), **knobs)
    console.print(f"[green]{len(paths)} scenes[/] of {frames} frames at {size}x{size} in {out}")


def _pick_scene(root: Path, scene: Optional[str]) -> Path:
    from gaspprobe.scenes.index import find_scenes

    subs = [p for _, p in find_scenes(root)]
    if scene is None:
        return subs[0]
    for p in subs:
        if p.name == scene:
            return p
    if scene.isdigit() and int(scene) < len(subs):
        return subs[int(scene)]
    names = ", ".join(p.name for p in subs[:6]) + (" ..." if len(subs) > 6 else "")
    raise DataError(f"no scene {scene!r} (have: {names})", path=root)


@app.command("show")
def show(
    root: Path = typer.Argument(..., help="A scene folder or a folder of scenes."),
    scene: Optional[str] = typer.Option(None, "--scene", help="Scene name or index (default: the first)."),
    frames: Optional[tuple[int, int]] = typer.Option(None, "--frames", help="Frame pair I J (default: first and middle)."),
    out: Path = typer.Option(Path("pair.png"), "--out", help="Output PNG."),
    grid: int = typer.Option(16, "--grid", min=1, help="Match on a GRID x GRID regular token grid."),
    lines: int = typer.Option(40, "--lines", min=0, help="Matches drawn."),
) -> None:
    """Draw two frames side by side with ground-truth matches as coloured lines, and their depth."""
    from gaspprobe.cli._common import console
    from gaspprobe.scenes import load_scene
    from gaspprobe.scenes.show import default_pair, show_pair

    s = load_scene(_pick_scene(root, scene))
    i, j = frames if frames is not None else default_pair(s)
    if not (-s.num_frames <= i < s.num_frames and -s.num_frames <= j < s.num_frames):
        raise ConfigError(f"--frames: {i} {j} out of range for {s.name} with {s.num_frames} frames")
    r = show_pair(s, i, j, out, grid=(grid, grid), n_lines=lines)
    console.print(f"{s.name}: frames {i} -> {j}: {r['n_matches']}/{r['n_src']} patches matched; "
                  f"wrote {r['path']}")


@app.command("check")
def check(
    root: Path = typer.Argument(..., help="A scene, a folder of scenes or a dataset root (any registered format)."),
    format: Optional[str] = typer.Option(None, "--format", help="Only this format (default: detect)."),
) -> None:
    """Detect the format, read every scene and say what was found; prints each problem (one line,
    naming the file) and exits 2 if any."""
    from rich.markup import escape

    from gaspprobe.cli._common import console, err_console
    from gaspprobe.scenes.index import describe

    infos = describe(root, format)
    bad = 0
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.format] = counts.get(info.format, 0) + 1
        if info.problems:
            bad += 1
            for msg in info.problems:
                err_console.print("[red]problem[/] " + escape(msg), highlight=False, soft_wrap=True)
            continue
        fx, fy, cx, cy = info.K
        console.print("[green]ok[/] " + escape(f"{info.path} [{info.format}] {info.name}: {info.frames} frames, "
                      f"{info.width}x{info.height}, fx {fx:.2f} fy {fy:.2f} cx {cx:.2f} cy {cy:.2f}, "
                      f"depth {'metric' if info.metric else 'NOT metric (unknown scale)'}"),
                      highlight=False, soft_wrap=True)
    fmts = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    if bad:
        err_console.print(f"{bad} of {len(infos)} scene(s) with problems ({fmts})", highlight=False)
        raise typer.Exit(2)
    console.print(f"{len(infos)} scene(s) ok ({fmts})", highlight=False)


@app.command("convert")
def convert(
    src: Path = typer.Argument(..., help="A scene, a folder of scenes or a dataset root (any registered format)."),
    out: Path = typer.Argument(..., help="Output folder: one ScanNet-layout scene folder per scene."),
    format: Optional[str] = typer.Option(None, "--format", help="Only this format (default: detect)."),
    force: bool = typer.Option(False, "--force", help="Replace a finished conversion in OUT."),
) -> None:
    """Write a copy of every scene in the ScanNet layout (published atomically as one run)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gaspprobe.cli._common import console
    from gaspprobe.scenes.index import convert as do_convert

    with Progress(TextColumn("convert"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as prog:
        task = prog.add_task("convert", total=None)
        m = do_convert(src, out, format=format, force=force,
                       progress=lambda done, total: prog.update(task, completed=done, total=total))
    n = len(m.get("scenes", []))
    fmts = ", ".join(f"{k}: {v}" for k, v in sorted((m.get("source_formats") or {}).items()))
    console.print(f"[green]{n} scene(s)[/] ({fmts}) in the ScanNet layout in {out}", highlight=False)


@app.command("index")
def index(
    root: Path = typer.Argument(..., help="A folder of scenes or a dataset root (any registered format)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Parquet file (default: ROOT/scenes.parquet)."),
    format: Optional[str] = typer.Option(None, "--format", help="Only this format (default: detect)."),
) -> None:
    """Write the scene index: one row per scene (scene, format, frames, size, intrinsics, metric)."""
    from gaspprobe.cli._common import console
    from gaspprobe.scenes.index import write_index

    df = write_index(root, out, format=format)
    target = out or root / "scenes.parquet"
    console.print(f"{len(df)} scene(s), {int(df['frames'].sum())} frames indexed in {target}", highlight=False)


@app.command("formats")
def formats() -> None:
    """List the scene formats that check, convert and the loaders recognise."""
    from gaspprobe.cli._common import console
    from gaspprobe.scenes.formats import by_priority

    for f in by_priority():
        console.print(f"[bold]{f.name:12s}[/] {'metric' if f.metric else 'not metric'}: {f.summary}",
                      highlight=False, soft_wrap=True)
