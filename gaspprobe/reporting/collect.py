"""Collect: the report's numbers as tidy DataFrames, read from validated runs.

Start at :func:`collect` (after :func:`gaspprobe.reporting.runs.load_runs`). Every number here was
computed by the run that produced it (the probe's ``summary.json``, the bench runner's summary and
statistics, the train log); the report never re-derives one. The summaries come from
:mod:`gaspprobe.tables`, which holds the one implementation each of pooled accuracy, peak layer and
robustness. A number a run does not have is NaN here and ``–`` in the report.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from gaspprobe.reporting.runs import Run, RunSet, source_blocks

_LLM = re.compile(r"^llm\.(\d+)$")


#: One row per probe run. ``peak``/``chance`` are at the recipe's headline tolerance
#: ``headline_r`` (0, or 2 = PCK@2patch in the paper recipe).
PROBE_COLUMNS = ["model", "mode", "headline_r", "peak_layer", "peak", "layer_mean", "vision", "chance",
                 "attention_peak", "robustness", "robustness_at_max_gap", "robustness_reason",
                 "gap_balanced", "conf_rho", "n_pairs", "n_matches", "n_scenes", "patch_unit"]


@dataclass
class ReportData:
    """The report's numbers as tidy DataFrames (model = display name)."""

    corr: Any       # model, mode, r, layer, layer_index, accuracy (fraction)
    probe: Any      # PROBE_COLUMNS: one row per probe run (accuracies as fractions)
    gaps: Any       # model, gap, accuracy (fraction, at the model's peak layer)
    depth: Any      # model, layer, layer_index, absrel, delta1, metric (False: scale-invariant scores)
    bench: Any      # model, benchmark, task, score (x100), n, ci_low, ci_high
    overall: Any    # model, benchmark, overall, n, n_failed, parse_failures, ci_low, ci_high, scorer
    loss: Any       # model, run, step, part, value
    consistency: Any = None  # model, benchmark, category, pairs, CC, WW, IC (x100; All-Angles)
    baselines: Any = None    # benchmark, baseline, model (blind only), task, score (x100)
    paired: Any = None       # benchmark, base, gasp, task, delta, ci_low, ci_high, significant, p
    sources: Any = None      # model, source, peak_layer, peak, robustness (non-primary sources)
    warnings: list[str] = field(default_factory=list)


def num(v: Any) -> float:
    """``v`` as a float; None, strings and other non-numbers are NaN."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def layer_index(layer: str) -> int | None:
    """``llm.7`` -> 7; ``vision`` (and any non-LLM layer) -> None."""
    m = _LLM.match(str(layer))
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- probe runs
def probe_rows(run: Run, name: str):
    """(corr, summary, gap, depth, source rows) for one probe run, read from its summary
    through :class:`gaspprobe.tables.ProbeSummary` (old and new summaries alike)."""
    from gaspprobe.tables import ProbeSummary

    raw = run.summary
    s = ProbeSummary.from_dict(raw, label=name)
    corr = []
    others = source_blocks(raw)
    blocks = [(s.mode, s.accuracy)] + [(m, b["accuracy"]) for m, b in others.items() if m != s.mode]
    for mode, acc in blocks:
        for r, per_layer in acc.items():
            for layer, v in (per_layer or {}).items():
                corr.append((name, mode, str(r), str(layer), layer_index(layer), num(v)))
    sources = [(name, m, b.get("peak_layer"), num(b.get("peak_accuracy")), num(b.get("robustness")))
               for m, b in others.items() if m != s.mode]
    att = others.get("attention", {})
    vision = s.vision_accuracy
    if not math.isfinite(vision):  # summaries before vision_accuracy was a key
        vision = num((s.accuracy.get("r0") or {}).get("vision"))
    summary = dict(model=name, mode=s.mode, headline_r=s.headline_r, peak_layer=s.peak_layer,
                   peak=s.peak_accuracy, layer_mean=s.layer_mean_accuracy, vision=vision,
                   chance=s.chance, attention_peak=num(att.get("peak_accuracy")),
                   robustness=s.robustness, robustness_at_max_gap=s.robustness_at_max_gap,
                   robustness_reason=s.robustness_reason, gap_balanced=s.gap_balanced_accuracy,
                   conf_rho=s.peak_rho, n_pairs=raw.get("n_pairs"), n_matches=raw.get("n_matches"),
                   n_scenes=raw.get("n_scenes"), patch_unit=s.patch_unit)
    gaps = [(name, num(g), num(v)) for g, v in s.accuracy_by_gap.items()]
    gaps = [g for g in gaps if math.isfinite(g[1]) and math.isfinite(g[2])]
    depth = []
    dp = raw.get("depth_probe")
    if isinstance(dp, dict):
        for layer, d in dp.items():
            if isinstance(d, dict):
                depth.append((name, str(layer), layer_index(layer), num(d.get("absrel")),
                              num(d.get("delta1")), bool(raw.get("depth_metric", True))))
    return corr, summary, gaps, depth, sources


# --------------------------------------------------------------------------- bench runs
def _ci(block: Any) -> tuple[float, float]:
    """(low, high) of an interval written as ``[lo, hi]`` or ``{"low": .., "high": ..}``."""
    if isinstance(block, (list, tuple)) and len(block) == 2:
        return num(block[0]), num(block[1])
    if isinstance(block, dict):
        return (num(block.get("low", block.get("lo", block.get("ci_low")))),
                num(block.get("high", block.get("hi", block.get("ci_high")))))
    return math.nan, math.nan


def bench_rows(run: Run, name: str):
    """(task rows, overall row, consistency rows, baseline rows) for one bench run."""
    s, t = run.summary, run.table
    b = str(s["benchmark"])
    if s.get("data_synthetic") is True and not b.startswith("synthetic"):  # a real card over synthesized files
        b += " [synthetic data]"
    # The runner's n per task (merged sub-types included) wins over counting rows.
    counts = t["question_type"].astype(str).value_counts().to_dict()
    if isinstance(s.get("n_per_task"), dict):
        counts.update({str(k): v for k, v in s["n_per_task"].items()})
    cis = s.get("ci") if isinstance(s.get("ci"), dict) else {}
    task_ci = cis.get("tasks") if isinstance(cis.get("tasks"), dict) else {}
    tasks = []
    for task, v in (s.get("tasks") or {}).items():
        lo, hi = _ci(task_ci.get(str(task)))
        tasks.append((name, b, str(task), num(v), counts.get(str(task)), lo, hi))
    cons = []
    pc = s.get("paired_consistency")
    if isinstance(pc, dict):
        for cat, d in pc.items():
            if isinstance(d, dict):
                cons.append((name, b, str(cat), d.get("pairs"), num(d.get("CC")), num(d.get("WW")),
                             num(d.get("IC"))))
    lo, hi = _ci(cis.get("overall"))
    scorer = s.get("scorer")
    overall = dict(model=name, benchmark=b, overall=num(s.get("overall")), n=s.get("n", len(t)),
                   n_failed=s.get("n_failed"), parse_failures=s.get("parse_failures"),
                   ci_low=lo, ci_high=hi, scorer=scorer if isinstance(scorer, str) else None)
    base = []
    bl = s.get("baselines")
    if isinstance(bl, dict):
        for kind, block in bl.items():
            if not isinstance(block, dict):
                continue
            # chance and frequency belong to the questions; blind to this model without vision
            who = name if kind == "blind" else None
            base.append((b, str(kind), who, "overall", num(block.get("overall"))))
            for task, v in (block.get("tasks") or {}).items():
                base.append((b, str(kind), who, str(task), num(v)))
    return tasks, overall, cons, base


# --------------------------------------------------------------------------- all runs
def collect(runset: RunSet, *, paired: Any = None) -> ReportData:
    """Gather every run's numbers into tidy DataFrames keyed by model display name.

    Args:
        runset: the validated runs.
        paired: rows ``benchmark, base, gasp, task, delta, ci_low, ci_high, significant, p`` of the
            paired comparisons (computed by the bench statistics for each base -> GASP pair), or None.
    """
    import pandas as pd

    corr, probe, gaps, depth, bench, overall, loss = [], [], [], [], [], [], []
    consistency, baselines, sources = [], [], []
    for run in runset.runs:
        name = runset.name(run.model_key)
        if run.kind == "probe":
            c, s, g, d, src = probe_rows(run, name)
            sources += src
            corr += c
            probe.append(s)
            gaps += g
            depth += d
        elif run.kind == "bench":
            tk, ov, cons, base = bench_rows(run, name)
            bench += tk
            overall.append(ov)
            consistency += cons
            # chance/frequency are properties of the questions: shown once per benchmark (the runs
            # of one benchmark answered the same questions: load_runs checks it).
            have = {(x[0], x[1], x[2]) for x in baselines}
            baselines += [x for x in base if (x[0], x[1], x[2]) not in have]
        else:
            who = runset.name(run.output_key) if run.output_key in runset.models \
                else f"train: {run.path.name}"
            t = run.table
            for part in [c for c in t.columns if str(c).startswith("loss")]:
                d = t[["step", part]].dropna()
                loss += [(who, str(run.path), num(st), part, num(v))
                         for st, v in zip(d["step"], d[part])]
    return ReportData(
        corr=pd.DataFrame(corr, columns=["model", "mode", "r", "layer", "layer_index", "accuracy"]),
        probe=pd.DataFrame(probe, columns=PROBE_COLUMNS),
        gaps=pd.DataFrame(gaps, columns=["model", "gap", "accuracy"]),
        sources=pd.DataFrame(sources, columns=["model", "source", "peak_layer", "peak", "robustness"]),
        depth=pd.DataFrame(depth, columns=["model", "layer", "layer_index", "absrel", "delta1", "metric"]),
        bench=pd.DataFrame(bench, columns=["model", "benchmark", "task", "score", "n", "ci_low",
                                           "ci_high"]),
        overall=pd.DataFrame(overall, columns=["model", "benchmark", "overall", "n", "n_failed",
                                               "parse_failures", "ci_low", "ci_high", "scorer"]),
        loss=pd.DataFrame(loss, columns=["model", "run", "step", "part", "value"]),
        consistency=pd.DataFrame(consistency, columns=["model", "benchmark", "category", "pairs",
                                                       "CC", "WW", "IC"]),
        baselines=pd.DataFrame(baselines, columns=["benchmark", "baseline", "model", "task", "score"]),
        paired=pd.DataFrame(paired if paired is not None else [],
                            columns=["benchmark", "base", "gasp", "task", "delta", "ci_low",
                                     "ci_high", "significant", "p"]),
        warnings=list(runset.warnings),
    )
