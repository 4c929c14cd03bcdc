"""Scoring: parse one output, score it with the card's metric, and write the run's tables.

Shared by the runner (:mod:`gaspprobe.benchmarking.runner`) and rescoring
(:mod:`gaspprobe.benchmarking.rescoring`), so a sample gets the same score whichever way its raw
output arrived. Records are the lines of ``predictions.jsonl``; :func:`finalize` turns the latest
record of every sample into ``scores.parquet`` and ``summary.json`` (the card's official
aggregation, the baselines of :func:`baselines` and the bootstrap intervals of
:mod:`gaspprobe.benchmarking.stats`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from gaspprobe import io
from gaspprobe.benchmarking.card import BenchmarkCard, Sample
from gaspprobe.errors import GaspError

from gaspprobe.benchmarking.card import PREDICTIONS, SCORES, SUMMARY  # noqa: E402,F401 (re-exported)
SCORE_COLUMNS = ["model", "benchmark", "id", "question_type", "prediction", "parsed", "target", "score", "task",
                 "failed", "cluster", "kind", "n_options", "pair_idx"]


def parser_for(card: BenchmarkCard, name: str | None) -> Callable:
    """The card's parser (default or a named one it offers)."""
    from gaspprobe.benchmarking.registry import PARSERS

    return PARSERS.get(card.check_parser(name))


def score_sample(sample: Sample, raw: str, parse: Callable, card: BenchmarkCard) -> tuple[Any, float]:
    """Parse ``raw`` and score it with the card's metric for the sample's answer kind."""
    from gaspprobe.benchmarking.registry import METRICS

    parsed = parse(raw, sample)
    metric = METRICS.get(card.metrics[sample.kind])
    return parsed, float(metric(parsed, sample.target))


def record(sample: Sample, raw: str | None, parsed: Any, score: float, failed: str | None,
           extra: dict | None = None) -> dict:
    """One ``predictions.jsonl`` line."""
    return {"id": sample.id, "question_type": sample.question_type, "task": sample.task,
            "prompt": sample.prompt, "raw": raw, "parsed": parsed, "target": sample.target,
            "score": score, "failed": failed, **(extra or {})}


def latest(records: Sequence[dict]) -> dict[str, dict]:
    """The last record of every id (a retried sample's newest attempt wins)."""
    out: dict[str, dict] = {}
    for r in records:
        out[str(r["id"])] = r
    return out


# --------------------------------------------------------------------------- judge hook
def resolve_judge(judge: Any) -> tuple[Callable | None, str | None]:
    """An optional answer extractor used only when the rule parser finds no answer (the paper's
    LLM judge for All-Angles is such a hook). ``judge`` is None (off, the default), a callable
    ``judge(raw, sample) -> letter | None`` or an importable ``"module:function"`` name."""
    if judge is None:
        return None, None
    if isinstance(judge, str):
        import importlib

        mod, _, attr = judge.partition(":")
        try:
            fn = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError, ValueError):
            raise GaspError(f"judge: cannot import {judge!r} (expected 'module:function')") from None
        return fn, judge
    if not callable(judge):
        raise GaspError(f"judge: expected a callable or 'module:function', got {type(judge).__name__}")
    return judge, f"{getattr(judge, '__module__', '?')}:{getattr(judge, '__qualname__', type(judge).__name__)}"


def with_judge(parse: Callable, judge: Callable | None) -> Callable:
    """``parse``, falling back to ``judge`` for multiple-choice outputs it cannot read."""
    if judge is None:
        return parse

    def parse_or_judge(raw: str, sample: Sample):
        got = parse(raw, sample)
        if got is None and sample.kind == "mca":
            j = judge(raw, sample)
            got = j if isinstance(j, str) and j in sample.options else None
        return got

    return parse_or_judge


# --------------------------------------------------------------------------- baselines
def _row(s: Sample, score: float) -> dict:
    """What an aggregation reads of one sample (the scores table's columns)."""
    return {"question_type": s.question_type, "task": s.task, "pair_idx": s.pair_idx, "score": score,
            "n_options": len(s.options) if s.options else None, "kind": s.kind, "id": s.id}


def _agg_rows(agg: Callable, rows: list[dict]) -> dict:
    import pandas as pd

    a = agg(pd.DataFrame(rows))
    return {"overall": a["overall"], "tasks": a["tasks"]}


def baselines(card: BenchmarkCard, samples: Sequence[Sample], agg: Callable,
              blind: dict[str, float] | None = None) -> dict:
    """Per-task and overall baselines with the card's aggregation (x100).

    - ``chance``: expected score of a uniform option pick (1/n options; multiple choice only, so
      ``overall`` is None when the benchmark has numerical questions);
    - ``frequency``: always answering the most frequent ground truth of the question type,
      scored with the card's parser and metric;
    - ``blind``: the same model given no images or video (``blind`` = score by sample id; None
      when the run has no blind pass, e.g. for the special answerers).
    """
    from gaspprobe.benchmarking.metrics import chance_scores, most_frequent_answers

    if not samples:
        return {}
    ch = [(s, c) for s, c in zip(samples, chance_scores(samples)) if c is not None]
    chance = None
    if ch:
        a = _agg_rows(agg, [{**_row(s, c), "pair_idx": None} for s, c in ch])
        chance = {"overall": a["overall"] if len(ch) == len(samples) else None, "tasks": a["tasks"]}
    freq = most_frequent_answers(samples)
    parse = parser_for(card, None)
    frequency = _agg_rows(agg, [_row(s, score_sample(s, freq[s.question_type], parse, card)[1]) for s in samples])
    out = {"chance": chance, "frequency": frequency, "blind": None}
    if blind:
        rows = [_row(s, blind[s.id]) for s in samples if s.id in blind]
        if rows:
            out["blind"] = {**_agg_rows(agg, rows), "n": len(rows)}
    return out


# --------------------------------------------------------------------------- tables
def cluster_of(sample: Sample) -> str:
    """What questions share, for the clustered bootstrap: ``sample.cluster`` when the loader sets
    it, else the video, else the record's scene ``folder`` (All-Angles), else the sample alone
    (never an image's parent folder: a benchmark keeping all images in one folder would collapse
    into one cluster)."""
    c = getattr(sample, "cluster", None)
    if c:
        return str(c)
    v = sample.visual or {}
    if "video" in v:
        p = Path(str(v["video"]))
        return f"{p.parent.name}/{p.stem}"
    if isinstance(sample.doc, dict) and sample.doc.get("folder") is not None:
        return str(sample.doc["folder"])
    return sample.id


def finalize(out: Path, card: BenchmarkCard, samples: Sequence[Sample], last: dict[str, dict],
             model_name: str, meta: dict, *, n_missing_extra: int = 0) -> dict:
    """Write ``scores.parquet`` and ``summary.json`` from the latest record of every sample.

    The summary holds the card's official aggregation (``overall``, ``tasks`` x100), the counts
    (``n``, ``n_failed``, ``n_missing``, ``parse_failures``), ``baselines`` (chance, frequency,
    blind), ``ci`` (bootstrap 95% intervals per task and overall, clustered by video/scene) and
    ``meta`` (profile, frames, prompt, parser, scorer, ...). Rows that did not validate
    (``sample.error``) are failures (``n_invalid``) left out of the table and the aggregation:
    they have no trustworthy target to score against."""
    import pandas as pd

    from gaspprobe.benchmarking import stats
    from gaspprobe.benchmarking.parse import format_parsed
    from gaspprobe.benchmarking.registry import AGGREGATIONS

    rows, failures, missing, parse_failures, n_invalid = [], {}, 0, 0, 0
    blind: dict[str, float] = {}
    for s in samples:
        if s.error:  # a row that did not validate: failed, outside the aggregation
            failures[s.id] = s.error
            n_invalid += 1
            continue
        r = last.get(s.id)
        if r is None:
            missing += 1
            continue
        if r.get("failed"):
            failures[s.id] = r["failed"]
        elif r.get("parsed") is None:
            parse_failures += 1
        if r.get("blind_score") is not None:
            blind[s.id] = float(r["blind_score"])
        rows.append({"model": model_name, "benchmark": card.name, "id": s.id, "question_type": s.question_type,
                     "prediction": r.get("raw"), "parsed": format_parsed(r.get("parsed")), "target": s.target,
                     "score": float(r.get("score") or 0.0), "task": s.task,
                     "failed": r.get("failed") or "", "cluster": cluster_of(s), "kind": s.kind,
                     "n_options": len(s.options) if s.options else None,
                     "pair_idx": None if s.pair_idx is None else str(s.pair_idx)})
    df = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    valid = [s for s in samples if not s.error]
    agg = AGGREGATIONS.get(card.aggregation)
    a = agg(df) if len(df) else {"overall": float("nan"), "tasks": {}, "question_types": {}, "n_per_task": {}}
    summary = {
        "model": model_name, "benchmark": card.name, "card_version": card.version,
        "overall": a["overall"], "tasks": a["tasks"], "question_types": a.get("question_types", {}),
        "n_per_task": a.get("n_per_task", {}),
        "n": len(df), "n_failed": len(failures), "n_invalid": n_invalid, "n_missing": missing + n_missing_extra,
        "parse_failures": parse_failures,
        "failures": dict(list(failures.items())[:50]),
        **meta,
        "aggregation": card.aggregation,
        "higher_is_better": card.higher_is_better,
        "baselines": baselines(card, valid, agg, blind) if valid else {},
        "ci": stats.summary_intervals(df, agg) if len(df) else {},
    }
    for k in ("overall_micro", "overall_macro", "paired_consistency"):
        if k in a:
            summary[k] = a[k]
    io.write_table(df, out / SCORES)
    io.atomic_write_json(out / SUMMARY, summary)
    return summary


@dataclass
class BenchResult:
    """What a bench run produced: the folder and its summary (scores table read on demand)."""

    run_dir: Path
    summary: dict

    @property
    def overall(self) -> float:
        return self.summary["overall"]

    @property
    def tasks(self) -> dict:
        return self.summary["tasks"]

    def scores(self):
        """The tidy per-sample table (pandas DataFrame)."""
        return io.read_table(self.run_dir / "scores.parquet")


def load_samples(card: BenchmarkCard, data, video_root=None, image_root=None, prompt_variant=None,
                 limit=None) -> list[Sample]:
    """The card's loader (``LOADERS[card.format]``) on ``data``, first ``limit`` samples."""
    from gaspprobe.benchmarking.registry import LOADERS

    samples = LOADERS.get(card.format)(card, data, video_root=video_root, image_root=image_root,
                                       prompt_variant=prompt_variant)
    if limit is not None:
        if limit < 1:
            raise GaspError(f"limit: expected a positive number, got {limit}")
        samples = samples[: int(limit)]
    return samples
