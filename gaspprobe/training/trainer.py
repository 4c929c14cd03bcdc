"""The GASP trainer: heads on every layer, InfoNCE + depth losses, LoRA via peft, accelerate, exact resume.

Start at :func:`train` (``gaspprobe.api.train`` and ``gaspprobe train`` call exactly this). One
optimizer step = ``grad_accum`` micro-batches of ``batch_size`` clips per process:

1. clips come from :class:`~gaspprobe.training.data.ClipPlan` (a pure function of seed and
   position), frames go through ``adapter.image_features(..., model=peft_model)`` in one
   multi-image forward per clip, which returns every supervised layer's image tokens with grads;
2. per-layer :class:`~gaspprobe.training.heads.HeadBank` heads embed them, and
   :func:`~gaspprobe.training.losses.gasp_loss` compares frames of each clip on the GT matches;
3. accelerate does device placement, mixed precision, gradient accumulation and multi-process
   gradient averaging (``accelerate launch -m gaspprobe.cli train ...`` works as is).

Checkpoints (``RUN/checkpoints/step-000050/state.safetensors``, written into a temp folder and
renamed) hold the trainable weights, heads, optimizer, scheduler, RNG states and the data
position; ``resume=True`` continues from the newest one and ends with bitwise the same weights as
an uninterrupted run on CPU (nothing random happens between checkpoints except what is saved).

Outputs: ``RUN/model/`` (LoRA merged; loads with ``gaspprobe.models.load`` like the base),
``RUN/heads.safetensors``, ``RUN/train_log.csv`` (+ parquet twin), ``RUN/val_log.csv``,
``RUN/loss_curve.png``, ``RUN/manifest.json`` (status "complete" last).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from gaspprobe import io
from gaspprobe.config import from_dict, load as load_config
from gaspprobe.errors import ConfigError, DataError, GaspError, ModelError
from gaspprobe.training.config import TrainConfig, parse_layers
from gaspprobe.training.data import ClipPlan, MatchCache, split_scenes
from gaspprobe.training.heads import HeadBank, query_weights
from gaspprobe.training.losses import MatchSet, gasp_loss

KIND = "train"
CKPT_DIR = "checkpoints"
STATE_FILE = "state.safetensors"

# Parameter-name fragments of the vision projector / merger and of the whole vision side, per
# family (Qwen2/2.5/3-VL: visual.merger (+ deepstack mergers); LLaVA, OneVision, InternVL:
# multi_modal_projector; Idefics3/SmolVLM: connector).
PROJECTOR_KEYS = ("visual.merger", "visual.deepstack_merger", "multi_modal_projector", "connector",
                  "image_newline")
VISION_KEYS = ("visual.", "vision_tower", "vision_model", *PROJECTOR_KEYS)


@dataclass
class TrainResult:
    """What :func:`train` returns. ``log`` is the per-step table (pandas), ``val`` the validation table."""

    out: Path
    model_dir: Path
    heads_path: Path
    steps: int
    summary: dict
    log: Any = None
    val: Any = None
    skipped: bool = False


@dataclass
class _Plan:
    """Derived facts of a run that are not in the config (recorded in the manifest)."""

    layers: list[str]
    head_dim: int
    vision: str
    tiny: bool
    grid: tuple[int, int]
    frames_per_clip: int
    n_train: int
    n_val: int
    trainable: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- small helpers
def resolve_config(config: Any = None, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from None / a path / a dict / a TrainConfig plus keyword overrides."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if config is None or isinstance(config, (str, Path)):
        return load_config(TrainConfig, config, overrides)
    if isinstance(config, dict):
        return from_dict(TrainConfig, {**config, **overrides})
    if isinstance(config, TrainConfig):
        return from_dict(TrainConfig, {**asdict(config), **overrides}) if overrides else config
    raise ConfigError(f"config: expected a TrainConfig, dict or path, got {type(config).__name__}")


def _config_json(cfg: TrainConfig) -> dict:
    return json.loads(io.to_json(asdict(cfg)))


def _is_tiny(adapter) -> bool:
    """True for models built by ``gaspprobe model tiny`` (random init: their tower is untrained)."""
    from gaspprobe.models.tiny import read_meta

    mid = str(getattr(adapter, "model_id", "") or "")
    try:
        return bool(mid) and Path(mid).is_dir() and read_meta(Path(mid)) is not None
    except GaspError:
        return False


def _groups(layers: list[str], n: int) -> list[tuple[str, list[str]]]:
    """Split supervised layers into <= n contiguous groups named ``llm.0`` or ``llm.0-llm.3``."""
    n = max(1, min(n, len(layers)))
    size = len(layers) / n
    out = []
    for g in range(n):
        part = layers[round(g * size):round((g + 1) * size)]
        out.append((part[0] if len(part) == 1 else f"{part[0]}-{part[-1]}", part))
    return out


def match_accuracy(feats: torch.Tensor, m: MatchSet) -> tuple[float, int]:
    """r=0 accuracy of cosine nearest-neighbour matching of raw features ``[B, F, N, D]`` on ``m``
    (the probe's criterion, inside the batch). Returns (accuracy, n)."""
    if m.num_matches == 0:
        return float("nan"), 0
    f = nn.functional.normalize(feats.detach().float(), dim=-1)
    a = f[m.pair_b[m.pair], m.pair_i[m.pair], m.src]                         # [M, D]
    b = f[m.pair_b[m.pair], m.pair_j[m.pair]]                                # [M, N, D]
    pred = torch.einsum("md,mnd->mn", a, b).argmax(-1)
    return float((pred == m.tgt).float().mean()), m.num_matches


def _lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    warm, total, kind = cfg.warmup_steps, cfg.steps, cfg.schedule

    def f(step: int) -> float:
        if warm > 0 and step < warm:
            return (step + 1) / warm
        if kind == "constant":
            return 1.0
        t = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1 + math.cos(math.pi * t)) if kind == "cosine" else 1.0 - t

    return f


class GaspModule(nn.Module):
    """The trained modules as one ``nn.Module`` (so DDP sees every trainable parameter):
    the (peft-wrapped) VLM and the heads. ``forward(frames)`` -> (raw feats, head embeddings),
    both ``{layer: [B, F, N, .]}``; ``lm_loss(batch)`` for the optional caption loss."""

    def __init__(self, adapter, model: nn.Module, heads: HeadBank, layers: list[str]):
        super().__init__()
        self.model = model
        self.heads = heads
        self.layers = list(layers)
        self._adapter = [adapter]       # in a list: the adapter is not a submodule

    def forward(self, frames: torch.Tensor, captions: dict | None = None):
        adapter = self._adapter[0]
        feats = adapter.image_features(frames, layers=self.layers, model=self.model)
        feats = {n: v.reshape(v.shape[0], v.shape[1], -1, v.shape[-1]) for n, v in feats.items()}
        embs = self.heads(feats)
        lm = None
        if captions is not None:
            lm = self.model(**captions, use_cache=False).loss
        return feats, embs, lm


# ----------------------------------------------------------------------------- model set-up
def _setup_model(adapter, cfg: TrainConfig, vision: str) -> tuple[nn.Module, dict]:
    """Freeze everything, then make trainable: LoRA (peft) or the whole LLM, plus the vision side.

    Returns (model to run, {"lora": n, "llm": n, "vision": n} trainable parameter counts)."""
    model = adapter.model
    for p in model.parameters():
        p.requires_grad_(False)
    counts = {"lora": 0, "llm": 0, "vision": 0}
    if cfg.full:
        for name, p in model.named_parameters():
            if "language_model" in name and "embed_tokens" not in name:
                p.requires_grad_(True)
                counts["llm"] += p.numel()
        if counts["llm"] == 0:
            raise ModelError("--full: found no language_model parameters in this model")
        run = model
    else:
        from peft import LoraConfig, get_peft_model

        lcfg = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=cfg.lora_targets, bias="none")
        try:
            run = get_peft_model(model, lcfg)
        except ValueError as e:
            raise ConfigError(f"lora_targets: {str(e).splitlines()[0][:160]}") from None
        counts["lora"] = sum(p.numel() for n, p in run.named_parameters() if "lora_" in n and p.requires_grad)
        bad = [n for n, p in run.named_parameters() if "lora_" in n and any(k in n for k in VISION_KEYS)]
        if bad:
            raise ConfigError(f"lora_targets: matches vision modules (e.g. {bad[0]}); restrict it to the "
                              f"language model")
    if vision != "none":
        keys = PROJECTOR_KEYS if vision == "projector" else VISION_KEYS
        for name, p in run.named_parameters():
            if "lora_" not in name and any(k in name for k in keys):
                p.requires_grad_(True)
                counts["vision"] += p.numel()
        if counts["vision"] == 0:
            raise ModelError(f"vision={vision}: no {vision} parameters found in this model family")
    return run, counts


def _trainable(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


# ----------------------------------------------------------------------------- checkpoints
def _checkpoints(out: Path) -> list[tuple[int, Path]]:
    d = out / CKPT_DIR
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        if p.name.startswith("step-") and (p / STATE_FILE).is_file():
            try:
                found.append((int(p.name[5:]), p))
            except ValueError:
                continue
    return sorted(found)


def save_checkpoint(out: Path, step: int, position: int, module: nn.Module, optimizer, scheduler,
                    keep: int) -> Path:
    """Write ``out/checkpoints/step-{step:06d}/state.safetensors`` atomically (temp folder + rename)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for n, p in _trainable(module).items():
        tensors[f"param/{n}"] = p.detach().cpu().contiguous()
    osd = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for idx, st in osd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim/{idx}/{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    meta = {
        "step": str(step), "position": str(position),
        "optimizer_groups": json.dumps(osd["param_groups"]),
        "optimizer_scalars": json.dumps(scalars),
        "scheduler": json.dumps(scheduler.state_dict()),
        "python_random": json.dumps(random.getstate()),
        "param_order": json.dumps(list(_trainable(module))),
    }
    try:
        import numpy as np

        st = np.random.get_state()
        tensors["rng/numpy"] = torch.from_numpy(st[1].astype("int64"))
        meta["numpy_random"] = json.dumps([st[0], int(st[2]), int(st[3]), float(st[4])])
    except ImportError:  # pragma: no cover
        pass
    root = out / CKPT_DIR
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / STATE_FILE), metadata=meta)
    with open(tmp / STATE_FILE, "rb") as f:
        os.fsync(f.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for s, p in _checkpoints(out)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def load_checkpoint(path: Path, module: nn.Module, optimizer, scheduler) -> tuple[int, int]:
    """Restore a checkpoint into the live objects; returns (step, data position)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path / STATE_FILE), "pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise DataError(f"unreadable checkpoint ({type(e).__name__})", path=path) from None
    params = _trainable(module)
    names = json.loads(meta["param_order"])
    if names != list(params):
        raise DataError("checkpoint does not match this model/config (different trainable parameters)",
                        path=path)
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(tensors[f"param/{n}"].to(p.device, p.dtype))
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim/"):
            _, idx, name = k.split("/", 2)
            state.setdefault(int(idx), {})[name] = v
    for idx, sc in json.loads(meta["optimizer_scalars"]).items():
        state.setdefault(int(idx), {}).update(sc)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["optimizer_groups"])})
    scheduler.load_state_dict(json.loads(meta["scheduler"]))
    torch.set_rng_state(tensors["rng/torch"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng/cuda/"))]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    st = json.loads(meta["python_random"])
    random.setstate((st[0], tuple(st[1]), st[2]))
    if "numpy_random" in meta:
        import numpy as np

        a, pos, gauss, cached = json.loads(meta["numpy_random"])
        np.random.set_state((a, tensors["rng/numpy"].numpy().astype("uint32"), pos, gauss, cached))
    return int(meta["step"]), int(meta["position"])


# ----------------------------------------------------------------------------- validation
def val_pairs(n_frames: int, gaps, pairs_per_gap: int) -> list[tuple[int, int, int]]:
    """(gap, i, j) frame pairs the validation compares: for each gap g < n_frames, up to
    ``pairs_per_gap`` start frames i evenly spread over [0, n_frames - g), each in both directions
    (i, i+g) and (i+g, i), as the probe's default recipe samples them."""
    out = []
    for g in gaps:
        if g >= n_frames:
            continue
        starts = sorted({round(k * (n_frames - g - 1) / max(1, pairs_per_gap - 1)) for k in range(pairs_per_gap)}) \
            if pairs_per_gap > 1 else [0]
        for i in starts:
            out += [(g, i, i + g), (g, i + g, i)]
    return out


@torch.no_grad()
def validate(module: GaspModule, cache: MatchCache, cfg: TrainConfig, device) -> dict:
    """Raw hidden-state r=0 accuracy on the validation scenes, the way the probe measures it.

    Each validation scene goes through ONE forward with its first ``cfg.val_frames`` frames (as
    ``gaspprobe probe`` does); frame pairs come from :func:`val_pairs`; a source token is correct
    when the target-frame token of highest cosine similarity is its GT token. Returns
    ``{"acc": {layer: (acc, n)}, "by_gap": {layer: {gap: (acc, n)}}, "peak_layer", "peak",
    "robustness"}`` with the peak over LLM layers and robustness = mean over gaps g > g_min of
    acc(g) / acc(g_min) at the peak layer. This steers defaults only; the reported figures are
    measured by ``gaspprobe probe`` on held-out scenes."""
    adapter = module._adapter[0]
    was = module.training
    module.eval()
    hits: dict[tuple[str, int], float] = {}
    counts: dict[int, int] = {}
    for s, scene in enumerate(cache.scenes):
        F = min(scene.num_frames, cfg.val_frames)
        pairs = val_pairs(F, cfg.val_gaps, cfg.val_pairs_per_gap)
        if not pairs:
            continue
        feats = adapter.image_features(scene.rgb[:F][None], layers=None, model=module.model)
        for g, i, j in pairs:
            src, tgt, _ = cache._pair(s, i, j, "token")
            if src.numel() == 0:
                continue
            counts[g] = counts.get(g, 0) + int(src.numel())
            for n, v in feats.items():
                f = nn.functional.normalize(v[0].reshape(F, -1, v.shape[-1]).float(), dim=-1)
                pred = (f[i][src.to(f.device)] @ f[j].T).argmax(-1).cpu()
                hits[(n, g)] = hits.get((n, g), 0.0) + float((pred == tgt).sum())
    module.train(was)
    total = sum(counts.values())
    if not total:
        return {}
    layers = list(dict.fromkeys(n for n, _ in hits))
    acc = {n: (sum(hits.get((n, g), 0.0) for g in counts) / total, total) for n in layers}
    by_gap = {n: {g: (hits.get((n, g), 0.0) / c, c) for g, c in sorted(counts.items())} for n in layers}
    llm = [n for n in layers if n != "vision"] or layers
    peak = max(llm, key=lambda n: acc[n][0])
    gs = sorted(counts)
    base = by_gap[peak][gs[0]][0]
    rob = (sum(by_gap[peak][g][0] for g in gs[1:]) / (len(gs) - 1) / base) if len(gs) > 1 and base > 0 \
        else float("nan")
    return {"acc": acc, "by_gap": by_gap, "peak_layer": peak, "peak": acc[peak][0], "robustness": rob}


# ----------------------------------------------------------------------------- outputs
def _write_tables(out: Path, records: list[dict], val_rows: list[dict]) -> None:
    import pandas as pd

    if records:
        io.write_table(pd.DataFrame(records), out / "train_log.parquet")
    if val_rows:
        # an evaluation redone after a resume replaces the earlier row of the same step and layer
        v = pd.DataFrame(val_rows).drop_duplicates(["step", "layer", "gap"], keep="last")
        io.write_table(v.reset_index(drop=True), out / "val_log.parquet")


def _plot(out: Path, records: list[dict], val_rows: list[dict]) -> None:
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


def _export_model(out: Path, run: nn.Module, adapter, base: str, cfg: TrainConfig) -> Path:
    """Merge LoRA and save ``out/model`` so that ``gaspprobe.models.load`` treats it like the base:
    weights + config via ``save_pretrained``, the processor, and the base folder's other small
    files (e.g. ``gaspprobe_model.json``, which names the tiny processor class)."""
    merged = run if cfg.full else run.merge_and_unload()
    adapter.model = merged
    final = out / "model"
    tmp = out / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    adapter.processor.save_pretrained(tmp)
    src = Path(base)
    if src.is_dir():
        skip = (".safetensors", ".bin", ".pt", ".pth", ".index.json")
        for f in src.iterdir():
            if f.is_file() and not f.name.endswith(skip) and not (tmp / f.name).exists():
                shutil.copy2(f, tmp / f.name)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def _read_result(out: Path, skipped: bool) -> TrainResult:
    import pandas as pd

    m = io.read_manifest(out, kind=KIND)
    log = pd.read_parquet(out / "train_log.parquet") if (out / "train_log.parquet").exists() else None
    val = pd.read_parquet(out / "val_log.parquet") if (out / "val_log.parquet").exists() else None
    return TrainResult(out=out, model_dir=out / "model", heads_path=out / "heads.safetensors",
                       steps=int(m.get("summary", {}).get("steps", 0)), summary=m.get("summary", {}),
                       log=log, val=val, skipped=skipped)


# ----------------------------------------------------------------------------- the entry point
def train(model: Any, scenes: Any, out: str | Path, config: Any = None, *, resume: bool = False,
          on_step: Callable[[int, dict], None] | None = None, progress: bool = True,
          **overrides: Any) -> TrainResult:
    """Train GASP on ``scenes`` and write the run folder ``out``.

    Args:
        model: a hub id / local model folder (string), or a loaded adapter (trained in place: its
            ``model`` ends up as the merged GASP model).
        scenes: a scenes folder (``gaspprobe scenes make``), or a list of ``Scene``. All scenes
            must have the same frame size; ``val_fraction`` of them are held back for validation.
        out: the run folder.
        config: a :class:`TrainConfig`, a dict, a TOML/YAML path, or None (defaults).
        resume: continue from the newest checkpoint in ``out`` (exactly; see module docstring).
        on_step: called as ``on_step(step, record)`` after every optimizer step (main process).
        progress: show a rich progress bar with the live losses.
        **overrides: TrainConfig fields (e.g. ``steps=100``).
    Returns:
        :class:`TrainResult`. A complete run folder with the same config and model returns the
        stored result without training (``skipped=True``).
    """
    cfg = resolve_config(config, **overrides)
    out = Path(out)
    base = model if isinstance(model, (str, Path)) else str(getattr(model, "model_id", "") or "")
    base = str(base)
    cfg_json = _config_json(cfg)

    # --------------------------------------------------------------- run-folder state
    # Checks that need no model run before it is loaded (a 7B model must not load to report a typo).
    if out.exists() and not out.is_dir():
        raise DataError("exists and is not a folder; choose another --out", path=out)
    if (out / io.MANIFEST).exists():
        m = io.read_manifest(out, kind=KIND)
        same = m.get("config") == cfg_json and m.get("model") == base
        if m.get("status") == "complete":
            if same:
                return _read_result(out, skipped=True)
            raise GaspError("holds a complete train run with a different config or model; choose a new --out",
                            path=out)
        if not same and (resume or _checkpoints(out)):
            diff = sorted(k for k in cfg_json if m.get("config", {}).get(k) != cfg_json[k])
            what = f"config keys {', '.join(diff)}" if diff else f"model {m.get('model')!r}"
            raise GaspError(f"cannot resume: the interrupted run used different {what}", path=out)
    ckpts = _checkpoints(out)
    if ckpts and not resume:
        raise GaspError("has checkpoints of an interrupted run; pass --resume to continue it or choose a new --out",
                        path=out)

    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    from accelerate import Accelerator

    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DistributedDataParallelKwargs

    # accelerate keeps process-wide singletons; a second train() in the same process (notebooks,
    # tests) must not inherit the last run's mixed precision or accumulation counter. The
    # distributed PartialState is kept.
    AcceleratorState._reset_state()
    GradientState._reset_state()

    # find_unused_parameters: LoRA on layers after the last supervised one gets no gradient.
    acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    main = acc.is_main_process

    # --------------------------------------------------------------- data
    from gaspprobe.scenes import load_scenes

    scene_list = load_scenes(scenes) if isinstance(scenes, (str, Path)) else list(scenes)
    if not scene_list:
        raise DataError("no scenes found", path=scenes if isinstance(scenes, (str, Path)) else None)
    sizes = {s.size for s in scene_list}
    if len(sizes) != 1:
        raise DataError(f"scenes have different frame sizes {sorted(sizes)}; training batches need one size",
                        path=scenes if isinstance(scenes, (str, Path)) else None)
    frame_size = next(iter(sizes))
    train_scenes, val_scenes = split_scenes(scene_list, cfg.val_fraction, cfg.seed)
    n_frames = min(s.num_frames for s in train_scenes)
    if n_frames < 2:
        raise DataError("a training scene has fewer than 2 frames: no frame pairs to match",
                        path=scenes if isinstance(scenes, (str, Path)) else None)

    if main:                                   # validated above; create it before the model loads
        out.mkdir(parents=True, exist_ok=True)

    # --------------------------------------------------------------- model
    if isinstance(model, (str, Path)):
        from gaspprobe.models import load as load_model

        adapter = load_model(str(model))
    else:
        adapter = model
    tiny = _is_tiny(adapter)
    vision = cfg.vision if cfg.vision != "auto" else ("projector" if tiny else "none")
    layers = parse_layers(cfg.layers, adapter.num_layers)
    unknown = sorted(set(cfg.layer_weights) - set(layers))
    if unknown:
        raise ConfigError(f"layer_weights: {unknown[0]!r} is not a supervised layer ({', '.join(layers)})")
    # Clips cannot be longer than the shortest training scene: shorten them (recorded in the
    # manifest's plan as frames_per_clip) rather than refuse a run whose scenes are short.
    clip_len = min(cfg.frames_per_clip, n_frames)
    if clip_len < cfg.frames_per_clip:
        import warnings

        warnings.warn(f"frames_per_clip={cfg.frames_per_clip} but the shortest training scene has {n_frames} "
                      f"frames: clips of {clip_len} frames are used", stacklevel=2)
    grid = adapter.token_grid(frame_size, clip_len)
    rows, cols = grid.rows, grid.cols
    token_boxes = grid.frame_boxes(0)
    d = adapter.hidden_size
    e = cfg.head_dim or min(256, d // 2)

    torch.manual_seed(cfg.seed)            # LoRA init draws from the global generator
    run, counts = _setup_model(adapter, cfg, vision)
    heads = HeadBank(layers, d, e)
    ks = heads.init(cfg.head_init, query_weights(adapter, layers) if cfg.head_init == "svd" else None,
                    generator=torch.Generator().manual_seed(cfg.seed + 1))
    module = GaspModule(adapter, run, heads, layers)
    module.train()
    counts["heads"] = sum(p.numel() for p in heads.parameters())
    plan_info = _Plan(layers=layers, head_dim=e, vision=vision, tiny=tiny, grid=(rows, cols), frames_per_clip=clip_len,
                      n_train=len(train_scenes), n_val=len(val_scenes), trainable=counts)

    cache = MatchCache(train_scenes, token_boxes, (rows, cols), cfg.gt_grids, cfg.depth_tol,
                       max_gap=2 * cfg.clip_window)
    plan = ClipPlan([s.num_frames for s in train_scenes], clip_len, cfg.clip_window,
                    cfg.clips_per_scene, cfg.seed)
    val_cache = (MatchCache(val_scenes, token_boxes, (rows, cols), (), cfg.depth_tol, max_gap=max(cfg.val_gaps))
                 if val_scenes else None)

    captions = None
    if cfg.lambda_lm > 0:
        p = Path(cfg.caption_file)
        if not p.is_file():
            raise ConfigError("caption_file: file not found", path=p)
        captions = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not captions:
            raise DataError("no captions in file", path=p)

    head_lr = cfg.head_lr if cfg.head_lr is not None else cfg.lr
    model_params = [p for p in run.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": model_params, "lr": cfg.lr},
                                   {"params": list(heads.parameters()), "lr": head_lr}],
                                  lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
    module, optimizer = acc.prepare(module, optimizer)
    inner = acc.unwrap_model(module)
    device = acc.device

    # --------------------------------------------------------------- resume / fresh start
    step, position = 0, 0
    log_path = out / "train_log.jsonl"
    val_path = out / "val_log.jsonl"
    if resume and ckpts:
        step, position = load_checkpoint(ckpts[-1][1], inner, optimizer, scheduler)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        for pth in (log_path, val_path):      # drop records past the checkpoint (they are redone)
            kept = [r for r in io.read_jsonl(pth) if r["step"] <= step] if step else []
            io.atomic_write_text(pth, "".join(json.dumps(r) + "\n" for r in kept))
        manifest = io.make_manifest(KIND, cfg, seed=cfg.seed, model=base, output_model=str(out / "model"),
                                    scenes=str(scenes) if isinstance(scenes, (str, Path)) else None,
                                    plan=asdict(plan_info), status="running")
        manifest["config"] = cfg_json
        io.write_manifest(out, manifest)
    acc.wait_for_everyone()

    groups = _groups(layers, cfg.log_groups)
    world, rank = acc.num_processes, acc.process_index
    t0 = time.perf_counter()
    log = io.JsonlAppender(log_path) if main else None
    vlog = io.JsonlAppender(val_path) if main else None

    last_val: dict = {}

    def run_validation(at: int) -> None:
        if val_cache is None:
            return
        res = validate(inner, val_cache, cfg, device)
        if main and res:
            for n, (a, cnt) in res["acc"].items():
                vlog.write({"step": at, "layer": n, "gap": 0, "acc_r0": a, "n": cnt})
                for g, (a2, c2) in res["by_gap"][n].items():
                    vlog.write({"step": at, "layer": n, "gap": g, "acc_r0": a2, "n": c2})
            vlog.write({"step": at, "layer": "summary", "gap": -1, "acc_r0": res["peak"], "n": 0,
                        "peak_layer": res["peak_layer"], "robustness": res["robustness"]})
            last_val.clear()
            last_val.update(res)

    bar = None
    if progress and main:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       TextColumn("{task.fields[info]}"), transient=False)
        task = bar.add_task("train", total=cfg.steps, completed=step, info="")
        bar.start()
    stopped_early = False
    try:
        if step == 0 and cfg.eval_every:
            run_validation(0)                  # the base model's figure (LoRA starts as a no-op)
        while step < cfg.steps:
            t_step = time.perf_counter()
            sums: dict[str, float] = {}
            for _ in range(cfg.grad_accum):
                clips = plan.batch(position, cfg.batch_size, rank, world)
                position += 1
                frames = cache.frames(clips)
                matches = {k: v.to(device) for k, v in cache.matches(clips).items()}
                cap = None
                if captions is not None:
                    tok = adapter.processor.tokenizer
                    texts = [captions[(position * cfg.batch_size + b) % len(captions)] for b in range(cfg.batch_size)]
                    cap = tok(texts, return_tensors="pt", padding=True)
                    labels = cap["input_ids"].masked_fill(cap["attention_mask"] == 0, -100)
                    cap = {"input_ids": cap["input_ids"].to(device),
                           "attention_mask": cap["attention_mask"].to(device), "labels": labels.to(device)}
                with acc.accumulate(module):
                    with acc.autocast():
                        feats, embs, lm = module(frames, cap)
                        loss, det = gasp_loss(embs, matches, temperature=cfg.temperature,
                                              lambda_corr=cfg.lambda_corr, lambda_depth=cfg.lambda_depth,
                                              layer_weights=cfg.layer_weights, weighting=cfg.match_weighting)
                        if lm is not None:
                            loss = loss + cfg.lambda_lm * lm
                            det["lm"] = float(lm.detach())
                            det["loss"] = float(loss.detach())
                    acc.backward(loss)
                    if acc.sync_gradients and cfg.max_grad_norm > 0:
                        acc.clip_grad_norm_(module.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                for n in layers:
                    det[f"{n}/raw_acc"] = match_accuracy(feats[n], matches["token"])[0]
                for k2, v in det.items():
                    sums[k2] = sums.get(k2, 0.0) + float(v) / cfg.grad_accum
            scheduler.step()
            step += 1
            keys = ["loss", "corr", "depth", "lm", "n_matches"] + [f"{n}/acc" for n in layers] + \
                   [f"{n}/raw_acc" for n in layers]
            vals = torch.tensor([sums.get(k, 0.0) for k in keys], dtype=torch.float64, device=device)
            if world > 1:
                vals = acc.reduce(vals, reduction="mean")
            avg = dict(zip(keys, vals.tolist()))
            rec = {"step": step, "loss": avg["loss"], "loss_corr": avg["corr"], "loss_depth": avg["depth"],
                   "loss_lm": avg["lm"], "lr": scheduler.get_last_lr()[0],
                   "n_matches": avg["n_matches"] * world}
            for gname, members in groups:
                rec[f"acc_{gname}"] = sum(avg[f"{n}/acc"] for n in members) / len(members)
            for gname, members in groups:
                rec[f"raw_acc_{gname}"] = sum(avg[f"{n}/raw_acc"] for n in members) / len(members)
            for n in layers:
                rec[f"{n}/corr"] = sums.get(f"{n}/corr", float("nan"))
                rec[f"{n}/depth"] = sums.get(f"{n}/depth", float("nan"))
            rec["step_s"] = time.perf_counter() - t_step
            rec["clips_per_s"] = cfg.batch_size * cfg.grad_accum * world / rec["step_s"]
            if main:
                log.write(rec)
                if bar is not None:
                    bar.update(task, completed=step, info=f"loss {rec['loss']:.3f} corr {rec['loss_corr']:.3f} "
                                                          f"depth {rec['loss_depth']:.3f} "
                                                          f"acc {rec[f'raw_acc_{groups[-1][0]}']:.2f}")
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                run_validation(step)
            out_of_time = bool(cfg.time_limit_s) and time.perf_counter() - t0 >= cfg.time_limit_s
            if world > 1 and cfg.time_limit_s:   # every process must stop at the same step
                flag = torch.tensor([1.0 if out_of_time else 0.0], device=device)
                out_of_time = bool(acc.reduce(flag, reduction="sum").item() > 0)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time:
                acc.wait_for_everyone()
                if main:
                    save_checkpoint(out, step, position, inner, optimizer, scheduler, cfg.keep_checkpoints)
                acc.wait_for_everyone()
            if on_step is not None and main:
                on_step(step, rec)
            if out_of_time:
                stopped_early = True
                break
    finally:
        if bar is not None:
            bar.stop()
        if log is not None:
            log.close()

    # --------------------------------------------------------------- final evaluation and export
    run_validation(step)
    if vlog is not None:
        vlog.close()
    acc.wait_for_everyone()
    train_time = time.perf_counter() - t0
    if main:
        records = io.read_jsonl(log_path)
        val_rows = io.read_jsonl(val_path)
        _write_tables(out, records, val_rows)
        _plot(out, records, val_rows)
        heads_path = inner.heads.save(out / "heads.safetensors",
                                      {"init": cfg.head_init, "svd_k": json.dumps(ks), "base_model": base})
        model_dir = _export_model(out, inner.model, adapter, base, cfg)
        tail = records[-min(20, len(records)):] if records else []
        summary = {
            "steps": step, "stopped_early": stopped_early, "clips": position * cfg.batch_size * world,
            "train_seconds_this_session": round(train_time, 2),
            "final_loss": sum(r["loss"] for r in tail) / len(tail) if tail else None,
            "val_accuracy_r0": {n: a for n, (a, _) in last_val.get("acc", {}).items()},
            "val_accuracy_by_gap": {str(g): a for g, (a, _) in
                                    last_val.get("by_gap", {}).get(last_val.get("peak_layer"), {}).items()},
            "val_peak_layer": last_val.get("peak_layer"),
            "val_peak_accuracy": last_val.get("peak"),
            "val_robustness": last_val.get("robustness"),
            "val_scenes": [sc.name for sc in val_scenes],
            "trainable_parameters": counts, "vision": vision, "layers": layers, "head_dim": e,
            "token_grid": [rows, cols], "processes": world,
        }
        manifest = io.read_manifest(out, kind=KIND)
        manifest.update(status="complete", summary=summary, heads=str(heads_path))
        io.write_manifest(out, manifest)
    acc.wait_for_everyone()
    return _read_result(out, skipped=False)
