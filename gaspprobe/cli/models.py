"""CLI: ``gaspprobe model list|tiny|inspect`` (thin: arguments -> :mod:`gaspprobe.models`)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Supported VLM families, tiny offline models.")


def _quiet() -> None:
    """No per-tensor progress bars from transformers on the console."""
    from transformers.utils import logging

    logging.disable_progress_bar()


@app.command("list")
def list_models() -> None:
    """Supported architectures (HF ``model_type``), with example hub ids."""
    from rich.table import Table

    from gaspprobe.cli._common import console
    from gaspprobe.models.registry import adapter_class, supported

    t = Table("model_type", "family", "example hub ids", "token layout")
    for name in supported():
        spec = adapter_class(name).spec
        t.add_row(name, spec.display_name, ", ".join(spec.hub_examples), spec.notes)
    console.print(t)


@app.command("tiny")
def tiny(
    out: Path = typer.Argument(..., help="Output folder (save_pretrained layout, loadable by every command)."),
    arch: str = typer.Option(..., "--arch", help="model_type of the family (see `gaspprobe model list`)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random init; the same seed gives the same weights."),
    force: bool = typer.Option(False, "--force", help="Rebuild over a finished tiny model of another arch/seed."),
) -> None:
    """Build a tiny randomly initialised model of a real architecture (offline), with its processor."""
    from gaspprobe.cli._common import console, set_threads
    from gaspprobe.models import build_tiny, load

    _quiet()
    set_threads(1)
    path = build_tiny(arch, out, seed=seed, force=force)
    ad = load(path, dtype="float32")
    n = sum(p.numel() for p in ad.model.parameters())
    console.print(f"[green]{ad.spec.display_name}[/] tiny model ({n:,} parameters, {ad.num_layers} LLM layers, "
                  f"hidden {ad.hidden_size}) in {path}")


@app.command("inspect")
def inspect(
    model: str = typer.Argument(..., help="Hub id or local model folder."),
    frame_size: tuple[int, int] = typer.Option((448, 448), "--frame-size", help="Frame height and width."),
    frames: int = typer.Option(1, "--frames", min=1, help="Frames in one forward pass."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, float16 or bfloat16."),
    device: str = typer.Option("cpu", "--device", help="torch device."),
    min_pixels: int = typer.Option(None, "--min-pixels", help="Processor pixel budget: smallest image area (Qwen-style)."),
    max_pixels: int = typer.Option(None, "--max-pixels", help="Processor pixel budget: largest image area (Qwen-style)."),
    longest_edge: int = typer.Option(None, "--longest-edge", help="Processor size: resize so the longest edge is this."),
    image_splitting: bool = typer.Option(None, "--image-splitting/--no-image-splitting",
                                         help="Tile large images (Idefics3/SmolVLM, InternVL, Gemma 3 pan-and-scan)."),
    max_tokens: int = typer.Option(16384, "--max-tokens", help="Warn when one clip needs more image tokens than this."),
) -> None:
    """Print the layers, hidden size, the token grid a frame size gives and the image-token budget."""
    from rich.table import Table

    from gaspprobe.cli._common import console, set_threads
    from gaspprobe.models import load

    _quiet()
    set_threads(1)
    pixels = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels),
                                 ("image_splitting", image_splitting)) if v is not None}
    if longest_edge is not None:
        pixels["size"] = {"longest_edge": longest_edge}
    ad = load(model, dtype=dtype, device=device, pixels=pixels or None)
    per_frame, per_clip = ad.image_tokens(tuple(frame_size), 1), ad.image_tokens(tuple(frame_size), frames)
    attn = ad.decoder_layers()[0].self_attn
    cfg = attn.config
    g = ad.token_grid(tuple(frame_size), frames)
    b = g.boxes
    t = Table(show_header=False)
    t.add_row("model", ad.model_id)
    t.add_row("family", f"{ad.spec.display_name} ({ad.spec.model_type}, {type(ad.model).__name__})")
    t.add_row("parameters", f"{sum(p.numel() for p in ad.model.parameters()):,}")
    t.add_row("LLM layers", f"{ad.num_layers} (layer names: {', '.join(ad.layer_names()[:3])} ... {ad.layer_names()[-1]})")
    t.add_row("hidden size", str(ad.hidden_size))
    t.add_row("attention heads", f"{cfg.num_attention_heads} (kv {getattr(cfg, 'num_key_value_heads', None)})")
    t.add_row("frame size", f"{frame_size[0]} x {frame_size[1]} (H x W), {frames} frame(s)")
    t.add_row("token grid", f"{g.rows} x {g.cols} = {g.tokens_per_frame} tokens per frame")
    t.add_row("image tokens", f"{per_frame:,} per frame, {per_clip:,} per clip of {frames} frame(s) "
                              f"(spatial grid plus separators and extra views)")
    if "video" in ad.modalities():
        try:
            gv = ad.token_grid(tuple(frame_size), frames, modality="video")
            nv = ad.image_tokens(tuple(frame_size), frames, modality="video")
            t.add_row("video input", f"{nv:,} video tokens per clip of {frames} frame(s): {gv.shape[0]} temporal "
                                     f"slice(s) of {gv.rows} x {gv.cols}, {gv.extra['frames'].shape[1]} frame(s) each")
        except Exception as e:  # e.g. no video processor (torchvision): say why, do not fail inspect
            t.add_row("video input", f"unavailable ({str(e).splitlines()[0]})")
    else:
        t.add_row("video input", "none (this family has no video path in transformers)")
    t.add_row("capture modes", ", ".join(ad.capture_modes()))
    t.add_row("pixel budget", ", ".join(f"{k}={v}" for k, v in ad.pixels.items()))
    t.add_row("token box", f"{float((b[..., 2] - b[..., 0]).mean()):.1f} x {float((b[..., 3] - b[..., 1]).mean()):.1f} px")
    covered = (float(b[..., 0].min()), float(b[..., 1].min()), float(b[..., 2].max()), float(b[..., 3].max()))
    t.add_row("covered (x0,y0,x1,y1)", ", ".join(f"{v:.1f}" for v in covered))
    for k, v in g.extra.items():
        if hasattr(v, "numel"):
            v = f"{v.numel()} tokens"
        elif isinstance(v, dict):
            v = ", ".join(f"{kk}: {tuple(vv.shape)}" for kk, vv in v.items())
        t.add_row(f"extra.{k}", str(v))
    console.print(t)
    if per_clip > max_tokens:
        from gaspprobe.cli._common import err_console

        err_console.print(f"[yellow]warning:[/] {per_clip:,} image tokens per clip of {frames} frame(s) is above "
                          f"--max-tokens {max_tokens:,}; lower --max-pixels / --longest-edge or use --no-image-splitting")
