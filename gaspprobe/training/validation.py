"""Validation during GASP training, measured the way ``gaspprobe probe`` measures it.

Nothing here is a second probe: matching is :func:`gaspprobe.probing.match.match_tokens` (cosine
nearest neighbour over all target-frame tokens, hidden mode), and pooled accuracy, peak layer and
robustness are :mod:`gaspprobe.tables`' single implementations (through
:class:`~gaspprobe.tables.ValidationSummary`); tolerances r = 0, 1, 2 tokens use the probe's
``hits_within`` (r=2 is the paper's PCK@2patch). What is specific to training is only *which* frames
are compared (:func:`val_pairs`: evenly spread start frames, deterministic, so the curve over steps
compares like with like) and where the ground truth comes from (the trainer's
:class:`~gaspprobe.training.data.MatchCache`).

:class:`Validator` runs it at a step and appends ``val_log.jsonl`` rows in the
:data:`gaspprobe.tables.VAL_LOG` schema; :func:`batch_accuracy` is the same matcher on the training
batch (the ``raw_acc_*`` columns of the train log).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from gaspprobe.probing.match import hits_within, match_tokens
from gaspprobe.tables import ValidationSummary, pooled_accuracy
from gaspprobe.training.losses import MatchSet


def val_pairs(n_frames: int, gaps, pairs_per_gap: int, positions: list[int] | None = None) -> list[tuple[int, int, int]]:
    """(gap, i, j) frame pairs the validation compares: for each gap g < n_frames, up to
    ``pairs_per_gap`` start frames i evenly spread over [0, n_frames - g), each in both directions
    (i, i+g) and (i+g, i). ``positions`` (video input: the anchor frames of the temporal token
    slices): only pairs of those frames, starts evenly spread over the ones a gap allows."""
    out = []
    if positions is not None:
        have = set(positions)
        for g in gaps:
            cands = [p for p in positions if p + g in have]
            if not cands:
                continue
            k = min(pairs_per_gap, len(cands))
            picks = sorted({cands[round(q * (len(cands) - 1) / max(1, k - 1))] for q in range(k)}) if k > 1 \
                else [cands[0]]
            for i in picks:
                out += [(g, i, i + g), (g, i + g, i)]
        return out
    for g in gaps:
        if g >= n_frames:
            continue
        starts = sorted({round(k * (n_frames - g - 1) / max(1, pairs_per_gap - 1)) for k in range(pairs_per_gap)}) \
            if pairs_per_gap > 1 else [0]
        for i in starts:
            out += [(g, i, i + g), (g, i + g, i)]
    return out


def batch_accuracy(feats: torch.Tensor, m: MatchSet) -> tuple[float, int]:
    """r=0 accuracy of the probe's matcher on raw features ``[B, F, N, D]`` over the batch's GT
    matches ``m`` (pooled over matches). Returns (accuracy, n); (nan, 0) without matches."""
    if m.num_matches == 0:
        return float("nan"), 0
    feats = feats.detach()
    hits, ns = [], []
    for b in range(feats.shape[0]):
        pidx = torch.nonzero(m.pair_b == b).squeeze(1).tolist()
        if not pidx:
            continue
        pairs = torch.stack([m.pair_i[pidx], m.pair_j[pidx]], 1).cpu()
        src = [m.src[m.pair == p] for p in pidx]
        tgt = [m.tgt[m.pair == p] for p in pidx]
        r = match_tokens(feats[b], feats[b], pairs, src, tgt, cosine=True)
        hits.append(float((r.pred == r.gt).sum()))
        ns.append(len(r))
    return pooled_accuracy(hits, ns)


#: Tolerances (in tokens, Chebyshev) reported beside r=0: r=2 is the paper's PCK@2patch.
TOLERANCES = (0, 1, 2)


@dataclass
class Validation:
    """One validation: the r=0 :class:`~gaspprobe.tables.ValidationSummary` (peak layer and
    robustness are chosen on it, as before) and ``by_r[r][layer][gap]`` pooled accuracy at each
    tolerance of :data:`TOLERANCES` (gap 0 = pooled over gaps)."""

    summary: ValidationSummary
    by_r: dict[int, dict[str, dict[int, float]]] = field(default_factory=dict)


@torch.no_grad()
def validate(module: Any, cache: Any, cfg: Any, step: int) -> Validation | None:
    """Raw hidden-state accuracy of ``module`` on the validation scenes of ``cache``.

    Each validation scene goes through ONE forward with its first ``cfg.val_frames`` frames (as
    ``gaspprobe probe`` does); frame pairs come from :func:`val_pairs`; a prediction counts at
    tolerance r when it lands within r tokens (Chebyshev) of the GT token
    (:func:`gaspprobe.probing.match.hits_within`). None when no pair has a match. This steers
    defaults only; the reported figures are measured by ``gaspprobe probe`` on held-out scenes."""
    adapter = module._adapter[0]
    cols = cache.boxes["token"][1][1]
    was = module.training
    module.eval()
    hits: dict[int, dict[tuple[str, int], float]] = {r: {} for r in TOLERANCES}
    counts: dict[int, int] = {}
    for s, scene in enumerate(cache.scenes):
        video = getattr(module, "modality", "images") == "video"
        F = getattr(cache, "val_frames", None) if video else None
        F = F or min(scene.num_frames, cfg.val_frames)
        anchors = (adapter.token_grid(scene.size, F, modality="video").extra["frames"][:, 0].tolist()
                   if video else None)
        slot = {a: t for t, a in enumerate(anchors)} if video else None
        chosen = []
        vp = val_pairs(F, cfg.val_gaps, cfg.val_pairs_per_gap, anchors)
        if hasattr(cache, "ensure"):
            cache.ensure(s, [(i, j) for _, i, j in vp], "token")  # one batched GT call per scene
        for g, i, j in vp:
            src, tgt, _ = cache._pair(s, i, j, "token")
            if src.numel():  # features are indexed by grid frame: the slice of each anchor frame
                chosen.append((g, *((slot[i], slot[j]) if video else (i, j)), src, tgt))
        if not chosen:
            continue
        for g, *_rest, src, _tgt in chosen:
            counts[g] = counts.get(g, 0) + int(src.numel())
        pairs = torch.tensor([(i, j) for _, i, j, _, _ in chosen], dtype=torch.long)
        gap_of = torch.tensor([g for g, *_ in chosen], dtype=torch.long)
        feats = adapter.image_features(scene.rgb[:F][None], layers=None, model=module.model,
                                       modality="video" if video else "images")
        for n, v in feats.items():
            m = match_tokens(v[0], v[0], pairs, [c[3] for c in chosen], [c[4] for c in chosen], cosine=True)
            for r in TOLERANCES:
                ok = hits_within(m.pred, m.gt, cols, r).float()
                per_gap = torch.zeros(int(gap_of.max()) + 1).index_add_(0, gap_of[m.pair], ok)
                for g in dict.fromkeys(gap_of.tolist()):
                    hits[r][(n, g)] = hits[r].get((n, g), 0.0) + float(per_gap[g])
    module.train(was)
    if not counts:
        return None
    gaps = sorted(counts)
    by_r = {}
    for r in TOLERANCES:
        layers = list(dict.fromkeys(n for n, _ in hits[r]))
        by_r[r] = {n: {0: pooled_accuracy([hits[r].get((n, g), 0.0) for g in gaps], [counts[g] for g in gaps])[0],
                       **{g: pooled_accuracy([hits[r].get((n, g), 0.0)], [counts[g]])[0] for g in gaps}}
                   for n in layers}
    return Validation(ValidationSummary.from_hits(step, hits[0], counts), by_r)


def val_rows(val: Validation) -> list[dict]:
    """``val_log`` rows (:data:`gaspprobe.tables.VAL_LOG`) of one validation: per layer the pooled
    accuracy (gap 0) and each gap's (``acc_r0`` and, as extra columns, ``acc_r1`` / ``acc_r2``),
    then one ``summary`` row (gap -1) with peak and robustness (chosen at r=0)."""
    v = val.summary
    rows = []

    def extra(n: str, g: int) -> dict:
        return {f"acc_r{r}": val.by_r[r][n][g] for r in TOLERANCES if r}

    for n, a in v.accuracy.items():
        rows.append({"step": v.step, "layer": n, "gap": 0, "acc_r0": a, "n": v.n, **extra(n, 0)})
        for g, a2 in v.accuracy_by_gap[n].items():
            rows.append({"step": v.step, "layer": n, "gap": g, "acc_r0": a2, "n": v.n_by_gap[g], **extra(n, g)})
    rows.append({"step": v.step, "layer": "summary", "gap": -1, "acc_r0": v.peak_accuracy, "n": 0,
                 "peak_layer": v.peak_layer, "robustness": v.robustness})
    return rows


class Validator:
    """Runs :func:`validate` at a step, appends its rows to the val log (main process) and keeps
    the latest :class:`Validation` for the run's summary."""

    def __init__(self, module: Any, cache: Any, cfg: Any, log: Any = None):
        self.module, self.cache, self.cfg, self.log = module, cache, cfg, log
        self.last: Validation | None = None

    def __call__(self, step: int) -> None:
        if self.cache is None:
            return
        v = validate(self.module, self.cache, self.cfg, step)
        if v is None:
            return
        if self.log is not None:
            for row in val_rows(v):
                self.log.write(row)
        self.last = v

    def summary(self) -> dict:
        """The ``val_*`` keys of the run summary (empty values when never validated)."""
        if self.last is None:
            return {"val_accuracy_r0": {}, "val_accuracy_r2": {}, "val_accuracy_by_gap": {}, "val_peak_layer": None,
                    "val_peak_accuracy": None, "val_robustness": None, "val_robustness_reason": None}
        v = self.last.summary
        return {"val_accuracy_r0": dict(v.accuracy),
                "val_accuracy_r2": {n: a[0] for n, a in self.last.by_r[2].items()},
                "val_accuracy_by_gap": {str(g): a for g, a in v.accuracy_by_gap.get(v.peak_layer, {}).items()},
                "val_peak_layer": v.peak_layer, "val_peak_accuracy": v.peak_accuracy,
                "val_robustness": v.robustness, "val_robustness_reason": v.robustness_reason}
