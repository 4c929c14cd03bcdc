"""The probe-metric registry: every number of a probe table, with a naive reference beside it.

Each :class:`ProbeMetric` holds the implementation the probe uses (batched torch, or the one
implementation in :mod:`gaspprobe.tables`), a deliberately naive reference (Python loops, written
from the definition), and a seeded case generator. ``tests/test_probe_metrics.py`` is generated
from this registry: for every entry and several seeds, the two must agree. Adding a metric: one
function pair here and one ``METRICS.register`` line; its test appears by itself.

Tolerances are in patches: ``r`` is a Chebyshev distance in (row, col) of the token grid;
``patch_tokens(r, scale)`` turns a tolerance in vision-encoder patches into LLM tokens when one
token merges ``scale x scale`` patches (the recipe's ``patch_unit = "vision_patch"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from gaspprobe import tables
from gaspprobe.probing.depth import depth_scores
from gaspprobe.probing.match import chance_within, hits_within, match_tokens, spearman
from gaspprobe.registry import Registry


def patch_tokens(r: int, scale: int = 1) -> int:
    """A tolerance of ``r`` patches as a whole number of grid tokens: ``r // scale`` when one
    token spans ``scale`` patches per side (token centres are ``scale`` patches apart, so a token
    at Chebyshev distance d tokens is d * scale patches away and counts when d * scale <= r)."""
    return int(r) // max(int(scale), 1)


@dataclass(frozen=True)
class ProbeMetric:
    """``fn(*case)`` and ``naive(*case)`` must agree (``close``) on every ``make_case(seed)``."""

    name: str
    fn: Callable[..., Any]
    naive: Callable[..., Any]
    make_case: Callable[[int], tuple]
    close: Callable[[Any, Any], bool]
    doc: str = ""


def _eq(a, b) -> bool:
    return torch.equal(torch.as_tensor(a), torch.as_tensor(b))


def _allclose(a, b, tol=1e-9) -> bool:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=tol, rtol=tol, equal_nan=True))


def _close_tuple(a, b) -> bool:
    return len(a) == len(b) and all(_allclose(x, y) if isinstance(x, (float, int)) or x is None
                                     else (x == y) for x, y in zip(a, b))


# --------------------------------------------------------------------------- cases
def _grid_case(seed: int):
    g = torch.Generator().manual_seed(seed)
    rows, cols = int(torch.randint(1, 9, (1,), generator=g)), int(torch.randint(1, 9, (1,), generator=g))
    M = int(torch.randint(0, 60, (1,), generator=g))
    pred = torch.randint(0, rows * cols, (M,), generator=g)
    gt = torch.randint(0, rows * cols, (M,), generator=g)
    r = int(torch.randint(0, 4, (1,), generator=g))
    return g, rows, cols, pred, gt, r


# --------------------------------------------------------------------------- PCK at r
def _pck_case(seed):
    _, rows, cols, pred, gt, r = _grid_case(seed)
    return pred, gt, cols, r


def _pck_naive(pred, gt, cols, r):
    out = []
    for p, t in zip(pred.tolist(), gt.tolist()):
        out.append(max(abs(p // cols - t // cols), abs(p % cols - t % cols)) <= r)
    return torch.tensor(out, dtype=torch.bool)


# --------------------------------------------------------------------------- chance at r
def _chance_case(seed):
    _, rows, cols, _, gt, r = _grid_case(seed)
    return gt, rows, cols, r


def _chance_naive(gt, rows, cols, r):
    out = []
    for t in gt.tolist():
        tr, tc = t // cols, t % cols
        inside = sum(1 for a in range(rows) for b in range(cols) if max(abs(a - tr), abs(b - tc)) <= r)
        out.append(inside / (rows * cols))
    return torch.tensor(out, dtype=torch.float32)


# --------------------------------------------------------------------------- spearman
def _spearman_case(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(0, 40, (1,), generator=g))
    x = torch.randint(0, 6, (n,), generator=g).double()  # ties on purpose
    y = (torch.rand(n, generator=g) < 0.4).double()
    return x, y


def _spearman_naive(x, y):
    xs, ys = x.tolist(), y.tolist()
    n = len(xs)
    if n < 2:
        return float("nan"), 0

    def ranks(v):
        return [sum(1 for w in v if w < a) + (sum(1 for w in v if w == a) + 1) / 2 for a in v]

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / n, sum(ry) / n
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return (float("nan"), 0) if den == 0 else (num / den, n)


# --------------------------------------------------------------------------- matching
def _match_case(seed, D=5):
    g = torch.Generator().manual_seed(seed)
    F, T = 3, int(torch.randint(2, 12, (1,), generator=g))
    src = torch.randn(F, T, D, generator=g)
    cosine = bool(seed % 2)
    tgt = src if cosine else torch.randn(F, T, D, generator=g)
    pairs = torch.tensor([[0, 1], [1, 0], [2, 0]])
    sidx = [torch.randint(0, T, (int(torch.randint(0, 6, (1,), generator=g)),), generator=g) for _ in range(3)]
    tidx = [torch.randint(0, T, (len(s),), generator=g) for s in sidx]
    return src, tgt, pairs, sidx, tidx, cosine


def _match_fn(src, tgt, pairs, sidx, tidx, cosine):
    m = match_tokens(src, tgt, pairs, sidx, tidx, cosine=cosine, temperature=0.5)
    return m.pred, m.conf


def _match_naive(src, tgt, pairs, sidx, tidx, cosine):
    preds, confs = [], []
    for (i, j), ss in zip(pairs.tolist(), sidx):
        for s in ss.tolist():
            a = src[i, s].double()
            sims = []
            for t in range(tgt.shape[1]):
                b = tgt[j, t].double()
                sims.append(float(a @ b / (a.norm() * b.norm())) if cosine else float(a @ b))
            best = max(range(len(sims)), key=lambda t: (sims[t], -t))
            preds.append(best)
            confs.append(1.0 / sum(math.exp((v - sims[best]) / 0.5) for v in sims))
    return torch.tensor(preds, dtype=torch.long), torch.tensor(confs)


def _match_close(a, b):
    return _eq(a[0], b[0]) and _allclose(a[1], b[1], 1e-5)


# --------------------------------------------------------------------------- depth
def _depth_case(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(0, 30, (1,), generator=g))
    gt = torch.rand(n, generator=g).double() * 5 + 0.1
    pred = gt * torch.exp(torch.randn(n, generator=g).double() * 0.3)
    return pred, gt


def _depth_fn(pred, gt):
    s = depth_scores(pred, gt)
    return (s.absrel, s.delta1, s.n)


def _depth_naive(pred, gt):
    p, t = pred.tolist(), gt.tolist()
    if not t:
        return (float("nan"), float("nan"), 0)
    absrel = sum(abs(a - b) / b for a, b in zip(p, t)) / len(t)
    d1 = sum(1 for a, b in zip(p, t) if max(a / b, b / a) < 1.25) / len(t)
    return (absrel, d1, len(t))


# --------------------------------------------------------------------------- gap-level numbers
def _gaps_case(seed):
    g = torch.Generator().manual_seed(seed)
    gaps = sorted(set(torch.randint(1, 25, (int(torch.randint(1, 8, (1,), generator=g)),), generator=g).tolist()))
    n = {k: int(torch.randint(0, 50, (1,), generator=g)) for k in gaps}
    hits = {k: int(torch.randint(0, n[k] + 1, (1,), generator=g)) for k in gaps}
    return hits, n


def _pooled_fn(hits, n):
    return tables.pooled_accuracy([hits[g] for g in hits], [n[g] for g in hits])


def _pooled_naive(hits, n):
    tot = 0
    h = 0
    for g in hits:
        tot += n[g]
        h += hits[g]
    return (h / tot if tot else float("nan"), tot)


def _acc(hits, n):
    return {g: (hits[g] / n[g] if n[g] else float("nan")) for g in hits}


def _balanced_fn(hits, n):
    return tables.gap_balanced_accuracy(_acc(hits, n), n)


def _balanced_naive(hits, n):
    vals = [hits[g] / n[g] for g in hits if n[g] > 0]
    return (sum(vals) / len(vals), len(vals)) if vals else (float("nan"), 0)


def _rob_fn(hits, n):
    r = tables.robustness(_acc(hits, n), n)
    return (r.value, r.at_max_gap)


def _rob_naive(hits, n):
    used = [g for g in sorted(hits) if n[g] > 0]
    if len(used) < 2 or hits[used[0]] == 0:
        return (float("nan"), float("nan"))
    base = hits[used[0]] / n[used[0]]
    ratios = [(hits[g] / n[g]) / base for g in used[1:]]
    return (sum(ratios) / len(ratios), ratios[-1])


def _peak_case(seed):
    g = torch.Generator().manual_seed(seed)
    L = int(torch.randint(1, 8, (1,), generator=g))
    vals = (torch.randint(0, 5, (L,), generator=g).double() / 4).tolist()  # ties on purpose
    names = ["vision"] + [f"llm.{i}" for i in range(L - 1)] if seed % 3 else [f"llm.{i}" for i in range(L)]
    return (dict(zip(names, vals)),)


def _peak_naive(acc):
    llm = [k for k in acc if k.startswith("llm.")] or list(acc)
    best = None
    for k in llm:
        if best is None or acc[k] > acc[best]:
            best = k
    return best


METRICS: Registry[ProbeMetric] = Registry("probe metric")
for _m in (
    ProbeMetric("pck", hits_within, _pck_naive, _pck_case, _eq,
                "PCK@r: prediction within Chebyshev r patches of the GT token (acc_r{r} rows)"),
    ProbeMetric("chance", chance_within, _chance_naive, _chance_case, _allclose,
                "chance of PCK@r for a uniformly random token, border-clipped (chance_r{r} rows)"),
    ProbeMetric("conf_spearman", spearman, _spearman_naive, _spearman_case, _close_tuple,
                "Spearman rho of match confidence vs correctness, average ranks for ties"),
    ProbeMetric("match", _match_fn, _match_naive, _match_case, _match_close,
                "nearest-neighbour prediction and its softmax confidence (cosine or raw dot)"),
    ProbeMetric("match_wide", _match_fn, _match_naive, lambda seed: _match_case(seed, D=1100), _match_close,
                "the same at D >= 1024, where the matcher multiplies per target frame (no padding)"),
    ProbeMetric("depth", _depth_fn, _depth_naive, _depth_case, _close_tuple,
                "depth probe AbsRel and delta<1.25"),
    ProbeMetric("pooled_accuracy", _pooled_fn, _pooled_naive, _gaps_case, _close_tuple,
                "accuracy pooled over matches (tables.pooled_accuracy)"),
    ProbeMetric("gap_balanced_accuracy", _balanced_fn, _balanced_naive, _gaps_case, _close_tuple,
                "mean over gaps of each gap's accuracy (tables.gap_balanced_accuracy)"),
    ProbeMetric("robustness", _rob_fn, _rob_naive, _gaps_case, _close_tuple,
                "mean over gaps > g_min of acc(g)/acc(g_min), and the ratio at the largest gap"),
    ProbeMetric("peak_layer", tables.peak_layer, _peak_naive, _peak_case, lambda a, b: a == b,
                "LLM layer with the highest value, earliest on ties (tables.peak_layer)"),
):
    METRICS.register(_m.name, _m)
