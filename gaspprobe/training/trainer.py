"""The GASP trainer's entry point: :func:`train` (``gaspprobe.api.train`` and ``gaspprobe train`` call it).

It assembles a run from the pieces that own each concern:

* the run folder: :func:`gaspprobe.runs.open_run` (kind ``train``, incremental publish: an
  unfinished run with the same config and model resumes from its newest checkpoint; a complete
  one is returned as is; another config is refused naming the keys);
* data: :mod:`~gaspprobe.training.data` (clip plan, GT matches, validation split);
* model surgery: :mod:`~gaspprobe.training.surgery` (LoRA / full / vision side, from the family's
  spec) and the heads (:mod:`~gaspprobe.training.heads`);
* the optimisation loop: :mod:`~gaspprobe.training.loop`;
* checkpoints: :mod:`~gaspprobe.training.checkpoints` (exact resume);
* validation: :mod:`~gaspprobe.training.validation` (the probe's matcher and numbers);
* outputs: :mod:`~gaspprobe.training.outputs` (``RUN/model`` merged, logs as versioned tables,
  loss curve).

Outputs: ``RUN/model/`` (LoRA merged; loads with ``gaspprobe.models.load`` like the base),
``RUN/heads.safetensors``, ``RUN/train_log.csv`` (+ parquet twin), ``RUN/val_log.csv``,
``RUN/loss_curve.png``, ``RUN/checkpoints/``, ``RUN/manifest.json`` (status "complete" last).
``accelerate launch -m gaspprobe.cli train ...`` runs it on several processes as is.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from gaspprobe import io, tables
from gaspprobe.config import from_dict, load as load_config
from gaspprobe.errors import ConfigError, DataError, GaspError
from gaspprobe.training.checkpoints import list_checkpoints, load_checkpoint
from gaspprobe.training.config import TrainConfig, parse_layers
from gaspprobe.training.data import (CaptionStream, ClipBatches, ClipPlan, MatchCache, batch_stream,
                                     split_scenes)
from gaspprobe.training.heads import HeadBank, query_weights
from gaspprobe.training.loop import GaspModule, Session, layer_groups, lr_lambda, run_loop
from gaspprobe.training.mix import ConversationStream, read_conversations
from gaspprobe.training.outputs import KIND, TrainResult, export_model, plot_curves, read_result, write_tables
from gaspprobe.training.surgery import setup_model
from gaspprobe.training.validation import Validator

__all__ = ["TrainResult", "resolve_config", "train"]

TRAIN_LOG, VAL_LOG = "train_log.jsonl", "val_log.jsonl"


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
    family: str = ""
    lora_targets: str | None = None
    trainable: dict = field(default_factory=dict)
    sources: list = field(default_factory=list)
    metric_depth: bool = True


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


def _is_tiny(adapter) -> bool:
    """True for models built by ``gaspprobe model tiny`` (random init: their tower is untrained)."""
    from gaspprobe.models.tiny import read_meta

    mid = str(getattr(adapter, "model_id", "") or "")
    try:
        return bool(mid) and Path(mid).is_dir() and read_meta(Path(mid)) is not None
    except GaspError:
        return False


def _accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DistributedDataParallelKwargs

    # accelerate keeps process-wide singletons; a second train() in the same process (notebooks,
    # tests) must not inherit the last run's mixed precision or accumulation counter. The
    # distributed PartialState is kept.
    AcceleratorState._reset_state()
    GradientState._reset_state()
    # find_unused_parameters: LoRA on layers after the last supervised one gets no gradient.
    return Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


@dataclass
class _Source:
    """One scene source: a folder (or a list of scenes) with its name, and its split."""

    name: str
    path: str | None
    train: list
    val: list


def _sources(scenes: Any, cfg: TrainConfig) -> list[_Source]:
    """Scene sources from a folder, a list of scenes, a list of folders (named by folder) or a dict
    ``{name: folder or scenes}``; each split into train / validation with the run's seed."""
    from gaspprobe.scenes import load_scenes

    if isinstance(scenes, dict):
        items = [(str(k), v) for k, v in scenes.items()]
    elif isinstance(scenes, (str, Path)):
        items = [(Path(scenes).name or str(scenes), scenes)]
    elif isinstance(scenes, (list, tuple)) and scenes and all(isinstance(x, (str, Path)) for x in scenes):
        items = [(Path(x).name or str(x), x) for x in scenes]
        dup = sorted({n for n, _ in items if [m for m, _ in items].count(n) > 1})
        if dup:
            raise DataError(f"two scene sources named {dup[0]!r}; pass a dict {{name: folder}}")
    else:
        items = [("scenes", list(scenes))]
    out = []
    for name, v in items:
        where = v if isinstance(v, (str, Path)) else None
        found = load_scenes(v, lazy=cfg.lazy_scenes) if where is not None else list(v)
        if not found:
            raise DataError("no scenes found", path=where)
        tr, va = split_scenes(found, cfg.val_fraction, cfg.seed)
        out.append(_Source(name, str(where) if where is not None else None, tr, va))
    unknown = sorted(set(cfg.source_weights) - {s.name for s in out})
    if unknown:
        raise ConfigError(f"source_weights: unknown scene source {unknown[0]!r} (sources: "
                          f"{', '.join(s.name for s in out)})")
    return out


def _load_scenes(scenes: Any, cfg: TrainConfig) -> tuple[list[_Source], tuple[int, int], int]:
    """(sources, frame size, shortest training scene) with the checks that must fail before a
    model loads."""
    sources = _sources(scenes, cfg)
    where = sources[0].path if len(sources) == 1 else None
    sizes = {s.size for src in sources for s in src.train + src.val}
    if len(sizes) != 1:
        raise DataError(f"scenes have different frame sizes {sorted(sizes)}; training batches need one size",
                        path=where)
    n_frames = min(s.num_frames for src in sources for s in src.train)
    if n_frames < 2:
        raise DataError("a training scene has fewer than 2 frames: no frame pairs to match", path=where)
    return sources, next(iter(sizes)), n_frames


def _build(model: Any, scenes: Any, cfg: TrainConfig, acc, out: Path) -> tuple[Session, _Plan, Validator, dict]:
    """Scenes, model surgery, heads, optimizer and GT caches: everything the loop needs."""
    sources, frame_size, n_frames = _load_scenes(scenes, cfg)
    convs = [c for f in cfg.mix_data for c in read_conversations(f, cfg.mix_media_root)]   # checked up front
    train_scenes = [sc for src in sources for sc in src.train]
    val_scenes = [sc for src in sources for sc in src.val]
    if isinstance(model, (str, Path)):
        from gaspprobe.models import load as load_model

        from gaspprobe.probing.run import recipe_pixels

        adapter = load_model(str(model), pixels=recipe_pixels(cfg))
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
                      f"frames: clips of {clip_len} frames are used", stacklevel=3)
    if cfg.modality != "images":
        adapter.check_modality(cfg.modality)
        adapter.video_fps = cfg.video_fps
    grid = adapter.token_grid(frame_size, clip_len, modality=cfg.modality)
    anchors = grid.extra["frames"][:, 0].tolist() if cfg.modality == "video" else None
    rows, cols = grid.rows, grid.cols
    token_boxes = grid.frame_boxes(0)
    d = adapter.hidden_size
    e = cfg.head_dim or min(256, d // 2)

    torch.manual_seed(cfg.seed)            # LoRA init draws from the global generator
    run, counts, targets = setup_model(adapter, cfg, vision)
    heads = HeadBank(layers, d, e)
    ks = heads.init(cfg.head_init, query_weights(adapter, layers) if cfg.head_init == "svd" else None,
                    generator=torch.Generator().manual_seed(cfg.seed + 1))
    module = GaspModule(adapter, run, heads, layers)
    module.modality = cfg.modality
    module.train()
    counts["heads"] = sum(p.numel() for p in heads.parameters())
    weights = [float(cfg.source_weights.get(src.name, 1.0)) for src in sources] if cfg.source_weights else None
    plan_info = _Plan(layers=layers, head_dim=e, vision=vision, tiny=tiny, grid=(rows, cols),
                      frames_per_clip=clip_len, n_train=len(train_scenes), n_val=len(val_scenes),
                      family=adapter.spec.model_type, lora_targets=targets, trainable=counts,
                      metric_depth=all(bool(getattr(sc, "metric", True)) for sc in train_scenes + val_scenes),
                      sources=[{"name": src.name, "path": src.path, "n_train": len(src.train), "n_val": len(src.val),
                                "weight": weights[q] if weights else None} for q, src in enumerate(sources)])

    cache = MatchCache(train_scenes, token_boxes, (rows, cols), cfg.gt_grids, cfg.depth_tol,
                       max_gap=2 * cfg.clip_window)
    plan = ClipPlan([s.num_frames for s in train_scenes], clip_len, cfg.clip_window, cfg.clips_per_scene, cfg.seed,
                    sources=[q for q, src in enumerate(sources) for _ in src.train], weights=weights)
    cache.anchors = anchors
    val_boxes, val_grid, val_frames = token_boxes, (rows, cols), None
    if cfg.modality == "video" and val_scenes:
        # a video's token grid may depend on its frame count (Qwen3-VL's processor budgets pixels per
        # video): validation feeds every scene the same frame count, on that count's own grid
        val_frames = min(cfg.val_frames, *(s.num_frames for s in val_scenes))
        vg = adapter.token_grid(frame_size, val_frames, modality="video")
        val_boxes, val_grid = vg.frame_boxes(0), (vg.rows, vg.cols)
    val_cache = (MatchCache(val_scenes, val_boxes, val_grid, (), cfg.depth_tol, max_gap=max(cfg.val_gaps))
                 if val_scenes else None)
    if val_cache is not None:
        val_cache.val_frames = val_frames
    text: list = []
    if cfg.lambda_lm > 0 and cfg.caption_file:
        text.append(CaptionStream(cfg.caption_file, adapter.processor.tokenizer, cfg.batch_size))
    if cfg.mix_data:
        text.append(ConversationStream(convs, adapter, cfg.mix_ratio, cfg.seed, video_frames=cfg.mix_video_frames,
                                       rank=acc.process_index, world=acc.num_processes, sources=cfg.mix_data,
                                       video_input=cfg.mix_video_input))

    head_lr = cfg.head_lr if cfg.head_lr is not None else cfg.lr
    model_params = [p for p in run.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": model_params, "lr": cfg.lr},
                                   {"params": list(heads.parameters()), "lr": head_lr}],
                                  lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    prepared, optimizer = acc.prepare(module, optimizer)
    inner = acc.unwrap_model(prepared)
    session = Session(cfg=cfg, out=out, acc=acc, adapter=adapter, module=prepared, inner=inner,
                      optimizer=optimizer, scheduler=scheduler, plan=plan, cache=cache, layers=layers,
                      text=text, groups=layer_groups(layers, cfg.log_groups))
    extra = {"ks": ks, "val_scenes": [sc.name for sc in val_scenes],
             "text_sources": [{"kind": type(t).__name__, "files": list(t.sources),
                               **({"records": len(t.convs), "ratio": t.ratio} if hasattr(t, "convs") else {})}
                              for t in text]}
    return session, plan_info, Validator(inner, val_cache, cfg), extra


def _scenes_field(scenes: Any) -> Any:
    """The manifest's ``scenes``: the folder, ``{name: folder}`` for several, None for in-memory scenes."""
    if isinstance(scenes, (str, Path)):
        return str(scenes)
    if isinstance(scenes, dict):
        return {str(k): str(v) if isinstance(v, (str, Path)) else None for k, v in scenes.items()}
    if isinstance(scenes, (list, tuple)) and scenes and all(isinstance(x, (str, Path)) for x in scenes):
        return [str(x) for x in scenes]
    return None


def _restore(s: Session, resumed: bool) -> tuple[int, int]:
    """(step, data position) to start from: the newest checkpoint of a resumed run, else (0, 0).
    Log records past it are dropped (they are redone)."""
    step, position = 0, 0
    ckpts = list_checkpoints(s.out) if resumed else []
    if ckpts:
        step, position = load_checkpoint(ckpts[-1][1], s.inner, s.optimizer, s.scheduler)
    if s.main:
        for name in (TRAIN_LOG, VAL_LOG):
            p = s.out / name
            kept = [r for r in io.read_jsonl(p) if r["step"] <= step] if step else []
            io.atomic_write_text(p, "".join(json.dumps(r) + "\n" for r in kept))
    return step, position


@contextlib.contextmanager
def _progress(enabled: bool, total: int, start: int):
    """A rich progress bar with the live losses; yields ``show(step, record)`` (or None)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[info]}"), transient=False)
    task = bar.add_task("train", total=total, completed=start, info="")

    def show(step: int, rec: dict) -> None:
        acc = next((v for k, v in reversed(list(rec.items())) if k.startswith("raw_acc_")), float("nan"))
        bar.update(task, completed=step, info=f"loss {rec['loss']:.3f} corr {rec['loss_corr']:.3f} "
                                              f"depth {rec['loss_depth']:.3f} acc {acc:.2f}")

    bar.start()
    try:
        yield show
    finally:
        bar.stop()


def _open(out: Path, cfg: TrainConfig, base: str, label: str | None, force: bool):
    """The run folder through the run kernel. Only the main process (``RANK`` 0 under torchrun /
    accelerate launch; read from the environment so that no distributed state is created before
    the Accelerator) locks it; the others read the same decision (nothing is written before every
    process has passed the barrier after this)."""
    from gaspprobe.runs import Run, decide, open_run

    ident = {"model": base}
    if int(os.environ.get("RANK", "0")) == 0:
        return open_run(out, KIND, cfg, publish="incremental", identity=ident, seed=cfg.seed, label=label,
                        force=force)
    decision, m = decide(out, KIND, cfg, ident, on_change="replace" if force else "refuse")
    if force and decision == "cached":               # as open_run does for the main process
        decision = "fresh"
    return Run(out=out, kind=KIND, config=cfg, publish="incremental", decision=decision, dir=out,
               seed=cfg.seed, label=label, identity=ident, manifest=m)


def train(model: Any, scenes: Any, out: str | Path, config: Any = None, *, label: str | None = None,
          force: bool = False, resume: bool = True, on_step: Callable[[int, dict], None] | None = None,
          progress: bool = True, **overrides: Any) -> TrainResult:
    """Train GASP on ``scenes`` and write the run folder ``out``.

    Args:
        model: a hub id / local model folder (string), or a loaded adapter (trained in place: its
            ``model`` ends up as the merged GASP model).
        scenes: a scenes folder (``gaspprobe scenes make`` or a dataset in any supported format),
            a list of ``Scene``, or several sources: a list of folders (named by folder) or a dict
            ``{name: folder or scenes}`` (mixed by ``source_weights``). All scenes must have the
            same frame size; ``val_fraction`` of each source is held back for validation.
        out: the run folder.
        config: a :class:`TrainConfig`, a dict, a TOML/YAML path, or None (defaults).
        label: the model's label in reports (the loop's "gasp"), written as ``model_label``.
        force: start afresh even over a complete run or one with another config.
        resume: kept for compatibility; an unfinished run with the same config and model always
            continues from its newest checkpoint (bitwise as if never interrupted, on CPU).
        on_step: called as ``on_step(step, record)`` after every optimizer step (main process).
        progress: show a rich progress bar with the live losses.
        **overrides: TrainConfig fields (e.g. ``steps=100``).
    Returns:
        :class:`TrainResult`. A complete run folder with the same config and model returns the
        stored result without training (``skipped=True``).
    """
    cfg = resolve_config(config, **overrides)
    out = Path(out)
    base = str(model if isinstance(model, (str, Path)) else getattr(model, "model_id", "") or "")
    with _open(out, cfg, base, label, force) as run:      # refusals before any model loads
        if run.cached:
            return read_result(out, skipped=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        acc = _accelerator(cfg)
        acc.wait_for_everyone()                            # every process has decided: now write
        s, plan_info, validator, extra = _build(model, scenes, cfg, acc, out)
        info = {"output_model": str(out / "model"), "plan": asdict(plan_info), "scenes": _scenes_field(scenes),
                "text_sources": extra["text_sources"],
                "tables": tables.schema_versions("train_log", "val_log")}
        if s.main:
            run.start(**info)                              # the manifest first: the folder is a run
        step, position = _restore(s, run.resumed)
        s.batches = batch_stream(ClipBatches(s.plan, s.cache, cfg.batch_size, acc.process_index, s.world),
                                 position, cfg.steps * cfg.grad_accum, cfg.num_workers, cfg.seed)
        acc.wait_for_everyone()

        t0 = time.perf_counter()
        log = io.JsonlAppender(out / TRAIN_LOG) if s.main else None
        validator.log = io.JsonlAppender(out / VAL_LOG) if s.main else None
        try:
            with _progress(progress and s.main, cfg.steps, step) as show:
                step, position, stopped = run_loop(s, step, position, log=log, validate=validator,
                                                   on_step=on_step, show=show)
            validator(step)                                # final evaluation
        finally:
            for f in (log, validator.log):
                if f is not None:
                    f.close()
        acc.wait_for_everyone()
        if s.main:
            summary = _finish(s, base, step, position, stopped, time.perf_counter() - t0, plan_info, validator,
                              extra)
            run.complete(**info, summary=summary, heads=str(out / "heads.safetensors"))
        acc.wait_for_everyone()
    return read_result(out, skipped=False)


def _finish(s: Session, base: str, step: int, position: int, stopped: bool, seconds: float, plan: _Plan,
            validator: Validator, extra: dict) -> dict:
    """Write the tables, the loss curve, the heads and the merged model; return the run summary."""
    cfg, out = s.cfg, s.out
    records = io.read_jsonl(out / TRAIN_LOG)
    vrows = io.read_jsonl(out / VAL_LOG)
    write_tables(out, records, vrows)
    plot_curves(out, records, vrows)
    s.inner.heads.save(out / "heads.safetensors",
                       {"init": cfg.head_init, "svd_k": json.dumps(extra["ks"]), "base_model": base})
    export_model(out, s.inner.model, s.adapter, base, cfg.full)
    tail = records[-min(20, len(records)):] if records else []
    return {
        "steps": step, "stopped_early": stopped, "clips": position * cfg.batch_size * s.world,
        "train_seconds_this_session": round(seconds, 2),
        "final_loss": sum(r["loss"] for r in tail) / len(tail) if tail else None,
        **validator.summary(), "val_scenes": extra["val_scenes"],
        "trainable_parameters": plan.trainable, "vision": plan.vision, "layers": plan.layers,
        "head_dim": plan.head_dim, "token_grid": list(plan.grid), "processes": s.world,
        "lora_targets": plan.lora_targets,
    }
