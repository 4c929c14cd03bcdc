"""The GASP optimisation loop: one optimizer step after another, logged, validated, checkpointed.

Start at :func:`run_loop`. One optimizer step = ``grad_accum`` micro-batches of ``batch_size``
clips per process (:func:`micro_batch`):

1. clips come from the :class:`~gaspprobe.training.data.ClipPlan` (a pure function of seed and
   position), frames go through ``adapter.image_features(..., model=peft_model)`` in one
   multi-image forward per clip, which returns every supervised layer's image tokens with grads;
2. per-layer :class:`~gaspprobe.training.heads.HeadBank` heads embed them, and
   :func:`~gaspprobe.training.losses.gasp_loss` compares frames of each clip on the GT matches;
3. accelerate does device placement, mixed precision, gradient accumulation and multi-process
   gradient averaging.

Everything the loop needs is in one :class:`Session` (built by the trainer); the loop owns no
files but the JSONL records it appends and the checkpoints it asks for.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from gaspprobe.training.checkpoints import save_checkpoint
from gaspprobe.training.heads import HeadBank
from gaspprobe.training.losses import gasp_loss
from gaspprobe.training.validation import batch_accuracy


class GaspModule(nn.Module):
    """The trained modules as one ``nn.Module`` (so DDP sees every trainable parameter):
    the (peft-wrapped) VLM and the heads. ``forward(frames)`` -> (raw feats, head embeddings),
    both ``{layer: [B, F, N, .]}``, and the optional LM loss on a tokenized text batch."""

    def __init__(self, adapter, model: nn.Module, heads: HeadBank, layers: list[str]):
        super().__init__()
        self.model = model
        self.heads = heads
        self.layers = list(layers)
        self._adapter = [adapter]       # in a list: the adapter is not a submodule
        self.modality = "images"        # "video": each clip is one video (TrainConfig.modality)

    def forward(self, frames: torch.Tensor, text: list[dict] | None = None):
        """``text``: tokenized LM batches (captions, conversation samples), each with ``labels``;
        their mean loss is returned as ``lm`` (None without text)."""
        adapter = self._adapter[0]
        feats = adapter.image_features(frames, layers=self.layers, model=self.model, modality=self.modality)
        feats = {n: v.reshape(v.shape[0], v.shape[1], -1, v.shape[-1]) for n, v in feats.items()}
        embs = self.heads(feats)
        lm = None
        if text:
            losses = [self.model(**b, use_cache=False).loss for b in text]
            lm = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
        return feats, embs, lm


def lr_lambda(cfg: Any) -> Callable[[int], float]:
    """LR multiplier per step: linear warm-up, then constant / cosine / linear decay to 0."""
    warm, total, kind = cfg.warmup_steps, cfg.steps, cfg.schedule

    def f(step: int) -> float:
        if warm > 0 and step < warm:
            return (step + 1) / warm
        if kind == "constant":
            return 1.0
        t = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1 + math.cos(math.pi * t)) if kind == "cosine" else 1.0 - t

    return f


def layer_groups(layers: list[str], n: int) -> list[tuple[str, list[str]]]:
    """Split supervised layers into <= n contiguous groups named ``llm.0`` or ``llm.0-llm.3``."""
    n = max(1, min(n, len(layers)))
    size = len(layers) / n
    out = []
    for g in range(n):
        part = layers[round(g * size):round((g + 1) * size)]
        out.append((part[0] if len(part) == 1 else f"{part[0]}-{part[-1]}", part))
    return out


@dataclass
class Session:
    """Everything a running training needs, built once by the trainer."""

    cfg: Any
    out: Path
    acc: Any                       # accelerate.Accelerator
    adapter: Any
    module: nn.Module              # prepared (DDP-wrapped when several processes)
    inner: nn.Module               # the unwrapped GaspModule
    optimizer: Any
    scheduler: Any
    plan: Any                      # ClipPlan
    cache: Any                     # MatchCache of the training scenes
    layers: list[str]
    text: list = field(default_factory=list)   # LM-loss streams (CaptionStream, ConversationStream)
    groups: list = field(default_factory=list)
    batches: Any = None            # iterator of (frames, matches) from data.batch_stream

    @property
    def main(self) -> bool:
        return self.acc.is_main_process

    @property
    def world(self) -> int:
        return self.acc.num_processes


def micro_batch(s: Session, position: int) -> tuple[dict[str, float], int]:
    """Forward + backward of micro-batch number ``position`` (the next item of ``s.batches``;
    optimizer step when accumulation ends); returns its loss parts and in-batch accuracies (already divided by ``grad_accum``) and
    the next position."""
    cfg, acc = s.cfg, s.acc
    frames, matches = next(s.batches)
    position += 1
    matches = {k: v.to(acc.device) for k, v in matches.items()}
    text = []
    for stream in s.text:
        b = stream.batch(position, acc.device)
        text += b if isinstance(b, list) else [b]
    with acc.accumulate(s.module):
        with acc.autocast():
            feats, embs, lm = s.module(frames, text)
            loss, det = gasp_loss(embs, matches, temperature=cfg.temperature,
                                  lambda_corr=cfg.lambda_corr, lambda_depth=cfg.lambda_depth,
                                  layer_weights=cfg.layer_weights, weighting=cfg.match_weighting)
            if lm is not None:
                loss = loss + cfg.lambda_lm * lm
                det["lm"] = float(lm.detach())
                det["loss"] = float(loss.detach())
        acc.backward(loss)
        if acc.sync_gradients and cfg.max_grad_norm > 0:
            acc.clip_grad_norm_(s.module.parameters(), cfg.max_grad_norm)
        s.optimizer.step()
        s.optimizer.zero_grad(set_to_none=True)
    for n in s.layers:
        det[f"{n}/raw_acc"] = batch_accuracy(feats[n], matches["token"])[0]
    return {k: float(v) / cfg.grad_accum for k, v in det.items()}, position


def step_record(s: Session, step: int, sums: dict[str, float], seconds: float) -> dict:
    """The train-log row of one optimizer step (averaged over processes)."""
    keys = ["loss", "corr", "depth", "lm", "n_matches"] + [f"{n}/acc" for n in s.layers] + \
           [f"{n}/raw_acc" for n in s.layers]
    vals = torch.tensor([sums.get(k, 0.0) for k in keys], dtype=torch.float64, device=s.acc.device)
    if s.world > 1:
        vals = s.acc.reduce(vals, reduction="mean")
    avg = dict(zip(keys, vals.tolist()))
    rec = {"step": step, "loss": avg["loss"], "loss_corr": avg["corr"], "loss_depth": avg["depth"],
           "loss_lm": avg["lm"], "lr": s.scheduler.get_last_lr()[0], "n_matches": avg["n_matches"] * s.world}
    for gname, members in s.groups:
        rec[f"acc_{gname}"] = sum(avg[f"{n}/acc"] for n in members) / len(members)
    for gname, members in s.groups:
        rec[f"raw_acc_{gname}"] = sum(avg[f"{n}/raw_acc"] for n in members) / len(members)
    for n in s.layers:
        rec[f"{n}/corr"] = sums.get(f"{n}/corr", float("nan"))
        rec[f"{n}/depth"] = sums.get(f"{n}/depth", float("nan"))
    rec["step_s"] = seconds
    rec["clips_per_s"] = s.cfg.batch_size * s.cfg.grad_accum * s.world / seconds
    return rec


def _out_of_time(s: Session, t0: float) -> bool:
    out = bool(s.cfg.time_limit_s) and time.perf_counter() - t0 >= s.cfg.time_limit_s
    if s.world > 1 and s.cfg.time_limit_s:   # every process must stop at the same step
        flag = torch.tensor([1.0 if out else 0.0], device=s.acc.device)
        out = bool(s.acc.reduce(flag, reduction="sum").item() > 0)
    return out


def run_loop(s: Session, step: int, position: int, *, log: Any = None, validate: Callable[[int], None],
             on_step: Callable[[int, dict], None] | None = None,
             show: Callable[[int, dict], None] | None = None) -> tuple[int, int, bool]:
    """Train from ``(step, position)`` to ``cfg.steps`` (or the time limit).

    ``log`` (main process) receives each step's record; ``validate(step)`` runs at step 0 of a
    fresh run and every ``eval_every`` steps; ``show`` updates a progress display; ``on_step`` is
    the caller's hook (main process). Returns (step, position, stopped early)."""
    cfg = s.cfg
    t0 = time.perf_counter()
    if step == 0 and cfg.eval_every:
        validate(0)                        # the base model's figure (LoRA starts as a no-op)
    while step < cfg.steps:
        t_step = time.perf_counter()
        sums: dict[str, float] = {}
        for _ in range(cfg.grad_accum):
            det, position = micro_batch(s, position)
            for k, v in det.items():
                sums[k] = sums.get(k, 0.0) + v
        s.scheduler.step()
        step += 1
        rec = step_record(s, step, sums, time.perf_counter() - t_step)
        if s.main and log is not None:
            log.write(rec)
        if s.main and show is not None:
            show(step, rec)
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
            validate(step)
        stop = _out_of_time(s, t0)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop:
            s.acc.wait_for_everyone()
            if s.main:
                save_checkpoint(s.out, step, position, s.inner, s.optimizer, s.scheduler, cfg.keep_checkpoints)
            s.acc.wait_for_everyone()
        if on_step is not None and s.main:
            on_step(step, rec)
        if stop:
            return step, position, True
    return step, position, False
