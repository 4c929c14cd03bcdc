"""What a finished GASP run leaves behind, besides its manifest and checkpoints.

* ``RUN/train_log.parquet`` (+ CSV) and ``RUN/val_log.parquet`` (+ CSV): the per-step and
  validation logs, conformed to :data:`gaspprobe.tables.TRAIN_LOG` / :data:`~gaspprobe.tables.VAL_LOG`
  (versioned; the parquet metadata names the schema), built from the JSONL records the loop appends;
* ``RUN/loss_curve.png``: losses and match accuracy over steps;
* ``RUN/model/``: the merged model (LoRA folded in) with its processor, loadable with
  :func:`gaspprobe.models.load` and plain transformers like the base: :func:`export_model`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from gaspprobe import io, tables

KIND = "train"

#: Processor files a family may carry that ``processor.save_pretrained`` does not rewrite when the
#: processor was loaded image-only (its video processor needs torchvision): copied from the base.
PROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json", "processor_config.json",
                   "chat_template.json", "chat_template.jinja", "tokenizer_config.json",
                   "special_tokens_map.json", "generation_config.json")


@dataclass
class TrainResult:
    """What :func:`~gaspprobe.training.trainer.train` returns. ``log`` is the per-step table
    (pandas), ``val`` the validation table."""

    out: Path
    model_dir: Path
    heads_path: Path
    steps: int
    summary: dict
    log: Any = None
    val: Any = None
    skipped: bool = False


def write_tables(out: Path, records: list[dict], val_rows: list[dict]) -> None:
    """Write the train and validation logs as versioned tables (parquet + CSV twin)."""
    import pandas as pd

    if records:
        tables.write_table(pd.DataFrame(records), out / "train_log.parquet", tables.TRAIN_LOG)
    if val_rows:
        # an evaluation redone after a resume replaces the earlier row of the same step and layer
        v = pd.DataFrame(val_rows).drop_duplicates(["step", "layer", "gap"], keep="last")
        tables.write_table(v.reset_index(drop=True), out / "val_log.parquet", tables.VAL_LOG)


def plot_curves(out: Path, records: list[dict], val_rows: list[dict]) -> None:
    """``loss_curve.png``: losses (10-step means) and match accuracy (train clips, validation peak)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    if not records:
        return
    df = pd.DataFrame(records)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    ax = axes[0]
    for col in ("loss", "loss_corr", "loss_depth", "loss_lm"):
        if col in df and df[col].notna().any() and (df[col] != 0).any():
            ax.plot(df["step"], df[col].rolling(10, min_periods=1).mean(), label=col)
    ax.set_xlabel("step"), ax.set_ylabel("loss (10-step mean)"), ax.legend(fontsize=7)
    ax = axes[1]
    for col in [c for c in df.columns if c.startswith("raw_acc_")]:
        ax.plot(df["step"], df[col].rolling(10, min_periods=1).mean(), label=f"train clips, {col[8:]}", lw=1)
    if val_rows:
        v = pd.DataFrame(val_rows)
        v = v[(v.gap == 0) & (v.layer != "vision")]
        peak = v.groupby("step")["acc_r0"].max()
        ax.plot(peak.index, peak.values, "ko-", label="validation scenes, peak layer", ms=3)
    ax.set_xlabel("step"), ax.set_ylabel("raw hidden-state match acc. r=0"), ax.set_ylim(0, 1)
    ax.legend(fontsize=6)
    fig.tight_layout()
    with io.atomic_path(out / "loss_curve.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _base_files(base: str) -> list[Path]:
    """Small non-weight files of the base model: its folder's, or for a hub id the processor files
    already in the local Hugging Face cache (nothing is downloaded)."""
    src = Path(base)
    if src.is_dir():
        skip = (".safetensors", ".bin", ".pt", ".pth", ".index.json")
        # the base folder's run manifest (a tiny model is a "model" run) describes that folder, not the
        # trained model: never copied
        return [f for f in src.iterdir() if f.is_file() and not f.name.endswith(skip) and f.name != "manifest.json"]
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return []
    found = []
    for name in PROCESSOR_FILES:
        try:
            p = try_to_load_from_cache(base, name)
        except Exception:  # not a valid repo id: nothing cached
            return found
        if isinstance(p, str) and Path(p).is_file():
            found.append(Path(p))
    return found


def export_model(out: Path, run: nn.Module, adapter: Any, base: str, full: bool) -> Path:
    """Merge LoRA and save ``out/model`` so that ``gaspprobe.models.load`` treats it like the base.

    Weights + config via ``save_pretrained``, the processor, and the base's other small files that
    the processor did not write (e.g. ``gaspprobe_model.json``, which names the tiny processor
    class, and ``video_preprocessor_config.json`` when the processor was loaded without its video
    processor), so a trained model keeps its video input settings. Written into a hidden
    ``.model.tmp`` folder and renamed."""
    merged = run if full else run.merge_and_unload()
    adapter.model = merged
    final = out / "model"
    tmp = out / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    adapter.processor.save_pretrained(tmp)
    for f in _base_files(base):
        if not (tmp / f.name).exists():
            shutil.copy2(f, tmp / f.name)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def read_result(out: Path, skipped: bool) -> TrainResult:
    """The :class:`TrainResult` of a complete run folder (tables read through their schemas)."""
    m = io.read_manifest(out, kind=KIND)
    tl, vl = out / "train_log.parquet", out / "val_log.parquet"
    log = tables.read_table(tl, tables.TRAIN_LOG) if tl.exists() else None
    val = tables.read_table(vl, tables.VAL_LOG) if vl.exists() else None
    return TrainResult(out=out, model_dir=out / "model", heads_path=out / "heads.safetensors",
                       steps=int(m.get("summary", {}).get("steps", 0)), summary=m.get("summary", {}),
                       log=log, val=val, skipped=skipped)
