"""Statistics to trust a benchmark number and a base-vs-GASP delta (pure functions, seeded).

For report writers (read these, they are the public API of this module):

- :func:`bootstrap_intervals` (``summary["ci"]`` of every bench run): 95% percentile intervals of
  ``overall`` and of every task under the card's own aggregation, resampling *clusters* (the
  questions about one video / scene move together, since they are not independent) with
  replacement.
- :func:`paired_comparison`: two runs scored on the same samples. Per task and overall: both
  scores, ``delta = b - a``, the paired cluster-bootstrap 95% interval of the delta
  (``delta_low``, ``delta_high``), ``significant`` = the interval excludes zero (mark those
  deltas), and for tasks whose scores are all 0/1 (multiple choice) McNemar's exact test
  (``mcnemar_p``, with the discordant counts ``a_only``/``b_only``).
- :func:`mcnemar_exact`: the exact two-sided McNemar p-value (binomial on discordant pairs).
- :func:`compare_runs` (``gaspprobe bench compare RUN RUN``) loads two run folders and calls
  :func:`paired_comparison` on the samples both scored.

Each function has a naive reference test in ``tests/test_bench_stats.py`` (scipy is a test
dependency only).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

LEVEL = 0.95
N_BOOT = 1000


def _clusters(df) -> np.ndarray:
    """Integer cluster code per row (``cluster`` column; every row its own cluster without it)."""
    import pandas as pd

    if "cluster" in df.columns:
        return pd.factorize(df["cluster"].astype(str))[0]
    return np.arange(len(df))


def _percentile(vals: Sequence[float], level: float) -> tuple[float | None, float | None]:
    """Percentile interval of the finite values (None, None when there are none)."""
    v = np.asarray([x for x in vals if x is not None and np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return None, None
    a = (1 - level) / 2
    return float(np.quantile(v, a)), float(np.quantile(v, 1 - a))


def _picks(n_c: int, n_boot: int, seed: int) -> np.ndarray:
    """Cluster draws [n_boot, n_c]: row b lists the clusters of bootstrap sample b (with replacement)."""
    return np.random.default_rng(seed).integers(0, max(n_c, 1), size=(int(n_boot), n_c))


def _rows_of(codes: np.ndarray, picks_row: np.ndarray) -> np.ndarray:
    """Row indices of one draw: every row of every drawn cluster (a cluster drawn twice counts twice)."""
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=int(codes.max()) + 1 if len(codes) else 0)
    members = np.split(order, np.cumsum(counts)[:-1])
    return np.concatenate([members[c] for c in picks_row]) if len(picks_row) else np.zeros(0, int)


def _group_means(df, key: str, codes: np.ndarray, W: np.ndarray) -> tuple[list, np.ndarray]:
    """Per-draw means of ``score`` per value of ``key``: (values, float64 [B, G]; NaN when a draw has
    no row of that group). ``W`` [B, C] counts how often each cluster was drawn."""
    import pandas as pd

    g, vals = pd.factorize(df[key].astype(str), sort=True)
    C, G = W.shape[1], len(vals)
    S = np.zeros((C, G))
    N = np.zeros((C, G))
    np.add.at(S, (codes, g), df["score"].to_numpy(np.float64))
    np.add.at(N, (codes, g), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return list(vals), (W @ S) / (W @ N)


def _fast_vsibench_macro(df, codes, W):
    from gaspprobe.benchmarking.metrics import VSI_REL_DIR, VSI_TASKS

    types, M = _group_means(df, "question_type", codes, W)
    col = {t: M[:, i] for i, t in enumerate(types)}
    tasks = {}
    for task in VSI_TASKS:
        if task == "object_rel_direction":
            subs = [col[t] for t in VSI_REL_DIR if t in col]
            if subs:
                with _quiet():
                    tasks[task] = np.nanmean(np.stack(subs), 0)
        elif task in col:
            tasks[task] = col[task]
    with _quiet():
        overall = np.nanmean(np.stack(list(tasks.values())), 0) if tasks else np.full(len(W), np.nan)
    return 100 * overall, {t: 100 * v for t, v in tasks.items()}


def _fast_allangles_micro(df, codes, W):
    tasks, M = _group_means(df, "task", codes, W)
    C = W.shape[1]
    S = np.bincount(codes, weights=df["score"].to_numpy(np.float64), minlength=C)
    N = np.bincount(codes, minlength=C).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = (W @ S) / (W @ N)
    return 100 * overall, {t: 100 * M[:, i] for i, t in enumerate(tasks)}


def _quiet():
    """Silence numpy's "mean of empty slice" (a draw without a task is NaN on purpose)."""
    import warnings

    cm = warnings.catch_warnings()
    cm.__enter__()
    warnings.simplefilter("ignore", RuntimeWarning)
    return _Exit(cm)


class _Exit:
    def __init__(self, cm):
        self.cm = cm

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.cm.__exit__(*a)


#: vectorised twins of card aggregations (same numbers as the pandas functions on every draw,
#: tested): one matrix product per statistic instead of one pandas aggregation per draw
FAST = {"vsibench_macro": _fast_vsibench_macro, "allangles_micro": _fast_allangles_micro}
#: draws for aggregations without a vectorised twin (pandas per draw is slow)
N_BOOT_SLOW = 200


def boot_stats(df, agg: Callable, picks: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, dict]:
    """``agg``'s overall [B] and tasks {task: [B]} on every draw of ``picks`` (NaN where a draw
    lacks a task). Uses the vectorised twin in :data:`FAST` when the aggregation has one."""
    B, C = picks.shape
    fast = FAST.get(getattr(agg, "__name__", ""))
    if fast is not None:
        W = np.zeros((B, C))
        if C:
            np.add.at(W, (np.repeat(np.arange(B), C), picks.ravel()), 1.0)
        return fast(df, codes, W)
    ov = np.full(B, np.nan)
    tasks: dict[str, np.ndarray] = {}
    for b in range(B):
        a = agg(df.iloc[_rows_of(codes, picks[b])])
        ov[b] = np.nan if a["overall"] is None else a["overall"]
        for t, v in a["tasks"].items():
            tasks.setdefault(t, np.full(B, np.nan))[b] = v
    return ov, tasks


def _draws(df, agg: Callable, n_boot: int, seed: int):
    """``(codes, n_clusters, n_boot, picks)``: the cluster code of each row, the number of
    clusters, the draw count (capped at ``N_BOOT_SLOW`` for an aggregation not in ``FAST``) and
    the seeded cluster picks of every draw."""
    codes = _clusters(df)
    n_c = int(codes.max()) + 1 if len(codes) else 0
    if getattr(agg, "__name__", "") not in FAST:
        n_boot = min(int(n_boot), N_BOOT_SLOW)
    return codes, n_c, n_boot, _picks(n_c, n_boot, seed)


def bootstrap_intervals(df, agg: Callable, *, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> dict:
    """Percentile bootstrap intervals of ``agg(df)``'s ``overall`` and ``tasks``.

    Args:
        df: per-sample table with ``score``, ``task``, ``question_type`` (and ``cluster``,
            ``pair_idx`` when present): what the card's aggregation reads.
        agg: the card's aggregation, ``agg(df) -> {"overall": x100, "tasks": {task: x100}}``.
    Returns:
        ``{"level", "n_boot", "seed", "clusters", "overall": [lo, hi], "tasks": {task: [lo, hi]}}``.
        A draw that loses a whole task leaves that draw out of the task's interval.
    """
    base = df.reset_index(drop=True)
    codes, n_c, n_boot, picks = _draws(base, agg, n_boot, seed)
    ov, tasks = boot_stats(base, agg, picks, codes)
    return {"level": level, "n_boot": int(n_boot), "seed": seed, "clusters": n_c,
            "overall": list(_percentile(ov, level)),
            "tasks": {t: list(_percentile(v, level)) for t, v in sorted(tasks.items())}}


def summary_intervals(df, agg: Callable, **kw: Any) -> dict:
    """:func:`bootstrap_intervals` of a run's scores (failed samples count as 0, as in ``overall``)."""
    return bootstrap_intervals(df, agg, **kw)


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict:
    """McNemar's exact test of two classifiers on the same items.

    With ``n10`` items only A got right and ``n01`` only B got right, the two-sided p-value is
    ``min(1, 2 * P[X <= min(n10, n01)])`` for ``X ~ Binomial(n10 + n01, 1/2)`` (1.0 when there is
    no discordant item). Returns ``{"a_only", "b_only", "p"}``."""
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"mcnemar_exact: {a.shape} vs {b.shape} items")
    n10 = int((a & ~b).sum())
    n01 = int((~a & b).sum())
    n = n10 + n01
    if n == 0:
        return {"a_only": n10, "b_only": n01, "p": 1.0}
    k = min(n10, n01)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return {"a_only": n10, "b_only": n01, "p": float(min(1.0, 2.0 * tail))}


def paired_comparison(a, b, agg: Callable, *, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> dict:
    """Compare run B with run A on the samples both scored.

    Args:
        a, b: per-sample tables (``id``, ``score``, ``task``, ``question_type``, optional
            ``cluster``/``pair_idx``) of the same benchmark; rows are matched by ``id``.
        agg: the card's aggregation.
    Returns:
        ``{"n", "clusters", "overall": row, "tasks": {task: row}}`` with each row
        ``{"a", "b", "delta", "delta_low", "delta_high", "significant", "mcnemar_p", "a_only",
        "b_only"}`` (McNemar keys None unless the task is multiple
        choice: ``kind`` "mca" where the table has it, and every score 0 or 1). The bootstrap
        resamples clusters once per draw and recomputes both aggregations on the same draw, so the
        interval is that of the paired delta.
    """
    ka = a.set_index(a["id"].astype(str))
    kb = b.set_index(b["id"].astype(str))
    ids = [i for i in ka.index if i in kb.index]
    A = ka.loc[ids].reset_index(drop=True)
    B = kb.loc[ids].reset_index(drop=True)
    ra, rb = agg(A), agg(B)
    codes, n_c, n_boot, picks = _draws(A, agg, n_boot, seed)
    oa, ta = boot_stats(A, agg, picks, codes)
    ob, tb = boot_stats(B, agg, picks, codes)
    dov = ob - oa
    dtask = {t: tb[t] - ta[t] for t in ta if t in tb}

    def row(va, vb, deltas, mask):
        lo, hi = _percentile(deltas, level)
        out = {"a": va, "b": vb, "delta": None if va is None or vb is None else vb - va,
               "delta_low": lo, "delta_high": hi,
               "significant": bool(lo is not None and (lo > 0 or hi < 0)),
               "mcnemar_p": None, "a_only": None, "b_only": None}
        sa, sb = A.loc[mask, "score"].to_numpy(float), B.loc[mask, "score"].to_numpy(float)
        mc = (A.loc[mask, "kind"] == "mca").all() if "kind" in A.columns else True
        if len(sa) and mc and np.isin(sa, (0.0, 1.0)).all() and np.isin(sb, (0.0, 1.0)).all():
            m = mcnemar_exact(sa == 1.0, sb == 1.0)
            out.update(mcnemar_p=m["p"], a_only=m["a_only"], b_only=m["b_only"])
        return out

    tasks = {t: row(ra["tasks"][t], rb["tasks"].get(t), dtask.get(t, []), (A["task"] == t).to_numpy())
             for t in ra["tasks"]}
    return {"n": len(ids), "clusters": n_c, "level": level, "n_boot": int(n_boot), "seed": seed,
            "overall": row(ra["overall"], rb["overall"], dov, np.ones(len(A), bool)), "tasks": tasks}


def compare_runs(run_a: str | Path, run_b: str | Path, *, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Load two bench run folders of one benchmark and compare them (:func:`paired_comparison`).

    Adds ``benchmark``, ``a``/``b`` (model, label, profile, scorer of each run) and ``profiles``.
    A run of another benchmark is a one-line :class:`~gaspprobe.errors.DataError`."""
    from gaspprobe import io
    from gaspprobe.benchmarking.card import load_card
    from gaspprobe.benchmarking.registry import AGGREGATIONS
    from gaspprobe.benchmarking.card import SCORES, SUMMARY
    from gaspprobe.errors import DataError

    runs = []
    for r in (run_a, run_b):
        r = Path(r)
        if not (r / SUMMARY).is_file() or not (r / SCORES).is_file():
            raise DataError("not a finished bench run (no summary.json / scores.parquet)", path=r)
        s = io.read_json(r / SUMMARY)
        m = io.read_manifest(r) if (r / io.MANIFEST).exists() else {}
        runs.append((r, s, m, io.read_table(r / SCORES)))
    (pa, sa, ma, da), (pb, sb, mb, db) = runs
    if sa.get("benchmark") != sb.get("benchmark"):
        raise DataError(f"benchmark {sb.get('benchmark')!r} differs from {sa.get('benchmark')!r} of {pa}", path=pb)
    card = load_card(sa["benchmark"])
    agg = AGGREGATIONS.get(card.aggregation)
    if "pair_idx" not in da.columns:
        da = da.assign(pair_idx=None)
        db = db.assign(pair_idx=None)
    res = paired_comparison(da, db, agg, n_boot=n_boot, seed=seed)

    def who(path, s, m):
        return {"path": str(path), "model": s.get("model"), "label": m.get("model_label"),
                "profile": s.get("profile"), "scorer": s.get("scorer", "generate"), "n": s.get("n")}

    res.update(benchmark=sa["benchmark"], a=who(pa, sa, ma), b=who(pb, sb, mb))
    return res
