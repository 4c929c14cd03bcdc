"""Per-sample metrics and benchmark aggregation (pure functions, batched torch where numeric).

Per-sample metrics (registered in :data:`gaspprobe.benchmarking.registry.METRICS`):

- ``accuracy``: exact match of the parsed option letter with the target letter (1.0 / 0.0).
- ``mra``: VSI-Bench Mean Relative Accuracy over exactly 10 thresholds 0.50, 0.55, ..., 0.95:
  ``MRA = mean_theta 1[|y_hat - y| / y <= 1 - theta]`` (``<=`` as in the official code; the paper
  writes ``<``). No answer scores 0 (the official ``WORST_CASE_FOR_METRICS``).

Aggregations (registered in :data:`AGGREGATIONS`), each ``fn(df) -> dict`` on a table with columns
``question_type``, ``task``, ``score`` (and ``pair_idx`` for All-Angles):

- ``vsibench_macro``: mean per raw question type; the three ``object_rel_direction_*`` types merge
  as the unweighted mean of their three means; ``overall`` = unweighted mean of the 8 task scores.
  Source: ``vision-x-nyu/thinking-in-space`` ``lmms_eval/tasks/vsibench/utils.py``
  ``vsibench_aggregate_results``. Deviation on subsets only: a missing difficulty is skipped
  (the official code counts it as 0, current lmms-eval raises KeyError).
- ``allangles_micro``: overall = accuracy over all questions (micro, as the paper's table and
  VLMEvalKit ``report_acc``); per-category accuracy; paired consistency per category.

All scores in the returned dicts are x100.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

# The official code builds the thresholds with np.linspace(.5, .95, int((.95-.5)/.05 + 2)) = 10
# points; building them with numpy too keeps every tie (|err| == 1 - theta) bit-identical.
MRA_THRESHOLDS = np.linspace(0.5, 0.95, 10)

VSI_MCA_TYPES = (
    "object_rel_direction_easy",
    "object_rel_direction_medium",
    "object_rel_direction_hard",
    "object_rel_distance",
    "route_planning",
    "obj_appearance_order",
)
VSI_NA_TYPES = ("object_abs_distance", "object_counting", "object_size_estimation", "room_size_estimation")
VSI_REL_DIR = VSI_MCA_TYPES[:3]
# reported task name for each raw question type (the paper's 8 columns)
VSI_TASK_OF = {t: t for t in VSI_MCA_TYPES + VSI_NA_TYPES} | {t: "object_rel_direction" for t in VSI_REL_DIR}
VSI_TASKS = ("object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation",
             "object_rel_distance", "object_rel_direction", "route_planning", "obj_appearance_order")

ALLANGLES_CATEGORIES = ("attribute_identification", "camera_pose_estimation", "counting", "manipulation",
                        "relative_direction", "relative_distance")


# --------------------------------------------------------------------------- per-sample metrics
def mean_relative_accuracy(pred, target):
    """Batched MRA.

    Args:
        pred: float tensor/array [N] of parsed predictions; NaN means no answer (scores 0).
        target: float tensor/array [N] of ground truths, > 0.
    Returns:
        float64 torch tensor [N] in {0, 0.1, ..., 1}.
    """
    import torch

    p = torch.as_tensor(np.asarray(pred, dtype=np.float64))
    t = torch.as_tensor(np.asarray(target, dtype=np.float64))
    rel = (p - t).abs() / t  # [N]; NaN for no answer, and NaN <= x is False -> 0
    tol = 1.0 - torch.as_tensor(MRA_THRESHOLDS)  # [10]
    return (rel[:, None] <= tol[None, :]).to(torch.float64).mean(dim=1)


def mra(parsed: Any, target: str) -> float:
    """MRA of one parsed number against a target string ("2.5"); None -> 0."""
    p = float("nan") if parsed is None or isinstance(parsed, str) else float(parsed)
    return float(mean_relative_accuracy([p], [float(target)])[0])


def accuracy(parsed: Any, target: str) -> float:
    """1.0 when the parsed letter equals the target letter (case-insensitive), else 0.0."""
    if parsed is None or not isinstance(parsed, str):
        return 0.0
    return 1.0 if parsed.lower() == str(target).lower() else 0.0


# --------------------------------------------------------------------------- aggregation
def _mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return float(sum(xs) / len(xs)) if xs else float("nan")


def vsibench_macro(df) -> dict:
    """VSI-Bench aggregation on a table with ``question_type`` and ``score`` in [0, 1].

    Returns ``{"overall": x100 macro over tasks, "overall_micro": x100 mean over questions
    (NOT the published number, labelled), "tasks": {task: x100}, "question_types": {raw: x100},
    "n_per_task": {task: n}}``.
    """
    per_type = {qt: float(g["score"].mean()) for qt, g in df.groupby("question_type", sort=True)}
    tasks: dict[str, float] = {}
    n_per_task: dict[str, int] = {}
    counts = df.groupby("question_type").size().to_dict()
    for task in VSI_TASKS:
        if task == "object_rel_direction":
            subs = [per_type[t] for t in VSI_REL_DIR if t in per_type]
            if subs:
                tasks[task] = _mean(subs)  # unweighted mean of the difficulty means
                n_per_task[task] = int(sum(counts.get(t, 0) for t in VSI_REL_DIR))
        elif task in per_type:
            tasks[task] = per_type[task]
            n_per_task[task] = int(counts[task])
    return {
        "overall": 100.0 * _mean(tasks.values()),
        "overall_micro": 100.0 * float(df["score"].mean()) if len(df) else float("nan"),
        "tasks": {k: 100.0 * v for k, v in tasks.items()},
        "question_types": {k: 100.0 * v for k, v in per_type.items()},
        "n_per_task": n_per_task,
    }


def paired_consistency(df) -> dict:
    """All-Angles paired consistency per category (paper §3.3).

    Questions are grouped by (``category``, ``pair_idx``); a group of exactly two questions is a
    pair: CC both correct, WW both wrong, IC one of each. Rows with a null ``pair_idx`` and groups
    of another size are not pairs (counted in ``unpaired``). Returns
    ``{category: {"pairs": n, "CC": %, "WW": %, "IC": %}}`` (x100, fractions of that category's pairs).
    """
    out: dict[str, dict] = {}
    if "pair_idx" not in df.columns:
        return out
    paired = df[df["pair_idx"].notna()]
    for cat, g in paired.groupby("task", sort=True):
        sizes = g.groupby("pair_idx")["score"].agg(["size", "sum"])
        pairs = sizes[sizes["size"] == 2]
        n = len(pairs)
        if n == 0:
            continue
        cc = int((pairs["sum"] == 2).sum())
        ww = int((pairs["sum"] == 0).sum())
        out[str(cat)] = {"pairs": n, "CC": 100.0 * cc / n, "WW": 100.0 * ww / n,
                         "IC": 100.0 * (n - cc - ww) / n, "unpaired": int((sizes["size"] != 2).sum())}
    return out


def allangles_micro(df) -> dict:
    """All-Angles aggregation: micro overall accuracy, per-category accuracy, paired consistency."""
    tasks = {str(c): 100.0 * float(g["score"].mean()) for c, g in df.groupby("task", sort=True)}
    return {
        "overall": 100.0 * float(df["score"].mean()) if len(df) else float("nan"),
        "overall_macro": 100.0 * _mean(v / 100.0 for v in tasks.values()) if tasks else float("nan"),
        "tasks": tasks,
        "question_types": tasks,
        "n_per_task": {str(c): int(len(g)) for c, g in df.groupby("task", sort=True)},
        "paired_consistency": paired_consistency(df),
    }


# --------------------------------------------------------------------------- baselines
def chance_scores(samples: Sequence[Any]) -> list[float | None]:
    """Expected score of a uniform random option pick per sample: 1 / n_options (MCA); None for NA
    (the official table shows no random row for numerical tasks)."""
    return [1.0 / len(s.options) if s.kind == "mca" and s.options else None for s in samples]


def most_frequent_answers(samples: Sequence[Any]) -> dict[str, str]:
    """Most frequent ground-truth answer per question type ("always select the most frequent
    answer" per task); ties go to the smallest answer string so the choice is deterministic."""
    from collections import Counter

    by_type: dict[str, Counter] = {}
    for s in samples:
        by_type.setdefault(s.question_type, Counter())[s.target] += 1
    return {qt: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for qt, c in by_type.items()}
