"""The benchmark runner: samples -> batched greedy generation -> parse -> score -> run folder.

Start at :func:`run` (what ``gaspprobe bench run`` and :func:`gaspprobe.api.bench` call) and
:func:`score` (``gaspprobe bench score``: rescoring predictions made elsewhere).

A run folder holds:

- ``predictions.jsonl``: one record per finished sample (``id``, ``question_type``, ``task``,
  ``prompt``, ``raw``, ``parsed``, ``target``, ``score``, ``failed`` (None or the reason), and
  for videos the sampled ``frame_indices``), flushed and fsynced per record; a rerun skips every
  id already finished (failed samples are retried) and the last record of an id wins.
- ``scores.parquet`` / ``scores.csv``: tidy rows ``model, benchmark, id, question_type,
  prediction, parsed, target, score`` (+ ``task``, ``failed``).
- ``summary.json``: ``overall`` and ``tasks`` (x100, the card's official aggregation), ``n``,
  ``n_failed``, ``parse_failures``, ``frames``, ``prompt_variant``, ``parser``, ``card_version``,
  baselines computed from the data, and for All-Angles ``paired_consistency``.
- ``manifest.json``: ``io.make_manifest("bench", config, ...)``; ``status`` is "complete" only at
  the very end; a rerun of a complete run with the same config returns at once, unless some
  samples failed (a missing or corrupt video): those alone are retried, so a repaired file is picked up.

Models: a model string goes to :func:`gaspprobe.models.load` (adapter with
``generate([(frames, prompt), ...], max_new_tokens=...) -> list[str]``), an object with such a
``generate`` is used as is, and three special names need no model at all: ``oracle:answers``
(answers from the ground truth; must score 100), ``baseline:frequency`` (the most frequent answer
of each question type) and ``baseline:random`` (a seeded uniform option; no answer for numbers).

Sharding: under ``accelerate launch --multi_gpu --num_processes N`` (or ``torchrun --nproc_per_node N``,
which also works on CPU) each process takes a contiguous share of
the unfinished samples (``PartialState.split_between_processes``) and writes
``predictions.rank{r}.jsonl``; the main process gathers them by id into ``predictions.jsonl`` and
writes the tables. A failed sample (missing or unreadable video/image) is recorded with its
reason, scores 0 and the run goes on; the summary counts them.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from gaspprobe import io
from gaspprobe.benchmarking.card import BenchmarkCard, Sample, load_card
from gaspprobe.errors import DataError, GaspError

PREDICTIONS = "predictions.jsonl"
SUMMARY = "summary.json"
SPECIAL_MODELS = ("oracle:answers", "baseline:frequency", "baseline:random")


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


# --------------------------------------------------------------------------- special models
class _Special:
    """Models answered from the data itself; they never need frames."""

    needs_visuals = False

    def __init__(self, name: str, samples: Sequence[Sample], seed: int = 0):
        from gaspprobe.benchmarking.metrics import most_frequent_answers

        self.name = name
        self.seed = seed
        self.freq = most_frequent_answers(samples) if name == "baseline:frequency" else {}

    def answer(self, s: Sample) -> str:
        if self.name == "oracle:answers":
            return s.target
        if self.name == "baseline:frequency":
            return self.freq[s.question_type]
        if s.kind == "mca":  # baseline:random: seeded per sample, independent of order and sharding
            return random.Random(f"{self.seed}:{s.id}").choice(sorted(s.options))
        return ""


def _resolve_model(model: Any, samples: Sequence[Sample], seed: int, device: str = "cpu") -> tuple[Any, str]:
    if isinstance(model, str):
        if model in SPECIAL_MODELS:
            return _Special(model, samples, seed), model
        if model.split(":", 1)[0] in ("oracle", "baseline"):
            raise GaspError(f"unknown special model {model!r}; supported: {', '.join(SPECIAL_MODELS)}")
        from gaspprobe import models

        return models.load(model, device=device), model
    if not hasattr(model, "generate"):
        raise GaspError(f"model must be a name/path or an adapter with .generate(), got {type(model).__name__}")
    return model, _object_name(model)


def _object_name(model: Any) -> str:
    return str(getattr(model, "name", None) or getattr(model, "model_id", None) or type(model).__name__)


# --------------------------------------------------------------------------- scoring
def score_sample(sample: Sample, raw: str, parse: Callable, card: BenchmarkCard) -> tuple[Any, float]:
    """Parse ``raw`` and score it with the card's metric for the sample's answer kind."""
    from gaspprobe.benchmarking.registry import METRICS

    parsed = parse(raw, sample)
    metric = METRICS.get(card.metrics[sample.kind])
    return parsed, float(metric(parsed, sample.target))


def _record(sample: Sample, raw: str | None, parsed: Any, score: float, failed: str | None,
            extra: dict | None = None) -> dict:
    return {"id": sample.id, "question_type": sample.question_type, "task": sample.task,
            "prompt": sample.prompt, "raw": raw, "parsed": parsed, "target": sample.target,
            "score": score, "failed": failed, **(extra or {})}


def _resolve_judge(judge: Any) -> tuple[Callable | None, str | None]:
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


def _with_judge(parse: Callable, judge: Callable | None) -> Callable:
    if judge is None:
        return parse

    def parse_or_judge(raw: str, sample: Sample):
        got = parse(raw, sample)
        if got is None and sample.kind == "mca":
            j = judge(raw, sample)
            got = j if isinstance(j, str) and j in sample.options else None
        return got

    return parse_or_judge


def _latest(records: Sequence[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in records:
        out[str(r["id"])] = r
    return out


def _baselines(card: BenchmarkCard, samples: Sequence[Sample], agg: Callable) -> dict:
    import pandas as pd

    from gaspprobe.benchmarking.metrics import chance_scores, most_frequent_answers

    ch = [(s, c) for s, c in zip(samples, chance_scores(samples)) if c is not None]
    chance = None
    if ch:
        df = pd.DataFrame({"question_type": [s.question_type for s, _ in ch], "task": [s.task for s, _ in ch],
                           "score": [c for _, c in ch], "pair_idx": [None] * len(ch)})
        a = agg(df)
        chance = {"overall": a["overall"] if len(ch) == len(samples) else None, "tasks": a["tasks"]}
    freq = most_frequent_answers(samples)
    parse = _parser(card, None)
    rows = [{"question_type": s.question_type, "task": s.task, "pair_idx": s.pair_idx,
             "score": score_sample(s, freq[s.question_type], parse, card)[1]} for s in samples]
    a = agg(pd.DataFrame(rows))
    return {"chance": chance, "frequency": {"overall": a["overall"], "tasks": a["tasks"]}}


def _parser(card: BenchmarkCard, name: str | None) -> Callable:
    from gaspprobe.benchmarking.registry import PARSERS

    return PARSERS.get(card.check_parser(name))


def _finalize(out: Path, card: BenchmarkCard, samples: Sequence[Sample], latest: dict[str, dict],
              model_name: str, meta: dict) -> dict:
    """Write scores.parquet/.csv and summary.json from the latest record of every sample."""
    import pandas as pd

    from gaspprobe.benchmarking.parse import format_parsed
    from gaspprobe.benchmarking.registry import AGGREGATIONS

    rows, failures, missing = [], {}, 0
    parse_failures = 0
    for s in samples:
        r = latest.get(s.id)
        if r is None:
            missing += 1
            continue
        if r.get("failed"):
            failures[s.id] = r["failed"]
        elif r.get("parsed") is None:
            parse_failures += 1
        rows.append({"model": model_name, "benchmark": card.name, "id": s.id, "question_type": s.question_type,
                     "prediction": r.get("raw"), "parsed": format_parsed(r.get("parsed")), "target": s.target,
                     "score": float(r.get("score") or 0.0), "task": s.task,
                     "failed": r.get("failed") or "", "pair_idx": None if s.pair_idx is None else str(s.pair_idx)})
    cols = ["model", "benchmark", "id", "question_type", "prediction", "parsed", "target", "score", "task",
            "failed", "pair_idx"]
    df = pd.DataFrame(rows, columns=cols)
    agg = AGGREGATIONS.get(card.aggregation)
    a = agg(df) if len(df) else {"overall": float("nan"), "tasks": {}, "question_types": {}, "n_per_task": {}}
    summary = {
        "model": model_name, "benchmark": card.name, "card_version": card.version,
        "overall": a["overall"], "tasks": a["tasks"], "question_types": a.get("question_types", {}),
        "n_per_task": a.get("n_per_task", {}),
        "n": len(df), "n_failed": len(failures), "n_missing": missing, "parse_failures": parse_failures,
        "failures": dict(list(failures.items())[:50]),
        **meta,
        "aggregation": card.aggregation,
        "higher_is_better": card.higher_is_better,
        "baselines": _baselines(card, samples, agg) if samples else {},
    }
    for k in ("overall_micro", "overall_macro", "paired_consistency"):
        if k in a:
            summary[k] = a[k]
    df = df.drop(columns=["pair_idx"])
    io.write_table(df, out / "scores.parquet")
    io.atomic_write_json(out / SUMMARY, summary)
    return summary


# --------------------------------------------------------------------------- visuals
class _VisualLoader:
    """Loads a sample's frames/images; keeps the last two decoded videos (questions share videos)."""

    def __init__(self, frames: int | None):
        self.frames = frames
        self._cache: dict[str, tuple] = {}

    def __call__(self, s: Sample) -> tuple[list, dict]:
        if "video" in s.visual:
            from gaspprobe.benchmarking.vsibench import read_video_frames

            path = s.visual["video"]
            if path not in self._cache:
                if len(self._cache) >= 2:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[path] = read_video_frames(path, int(self.frames or 32))
            fr, idx, n = self._cache[path]
            return list(fr), {"frame_indices": [int(i) for i in idx], "video_frames": int(n)}
        from gaspprobe.benchmarking.allangles import read_images

        return read_images(s.visual.get("images", [])), {}


# --------------------------------------------------------------------------- run
def _load(card: BenchmarkCard, data, video_root, image_root, prompt_variant, limit) -> list[Sample]:
    from gaspprobe.benchmarking.registry import LOADERS

    samples = LOADERS.get(card.format)(card, data, video_root=video_root, image_root=image_root,
                                       prompt_variant=prompt_variant)
    if limit is not None:
        if limit < 1:
            raise GaspError(f"limit: expected a positive number, got {limit}")
        samples = samples[: int(limit)]
    return samples


def _check_config(out: Path, config: dict) -> dict | None:
    """The existing manifest if ``out`` is a bench run with this config; error if it differs."""
    if not (out / io.MANIFEST).exists():
        return None
    m = io.read_manifest(out, kind="bench")
    old = m.get("config") or {}
    new = json.loads(io.to_json(config))  # the manifest's JSON round trip (tuples -> lists ...)
    if old != new:
        diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        k = diff[0] if diff else "?"
        raise DataError(f"holds a bench run with a different config ({k}: {old.get(k)!r} != {new.get(k)!r}); "
                        f"use another --out", path=out)
    return m


def _dist_state():
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    # without CUDA, accelerate only forms a (gloo) process group when asked for cpu explicitly
    st = PartialState(cpu=not torch.cuda.is_available())
    return st if st.num_processes > 1 else None


def run(model: Any, benchmark: str, data: str | Path, out: str | Path, *, video_root: str | Path | None = None,
        image_root: str | Path | None = None, frames: int | None = None, limit: int | None = None,
        batch_size: int = 1, prompt_variant: str | None = None, parser: str | None = None,
        max_new_tokens: int | None = None, seed: int = 0, progress: bool = True,
        device: str | None = None, judge: Any = None) -> BenchResult:
    """Run ``model`` on ``benchmark`` (card name or YAML path) over ``data`` into run folder ``out``.

    Args:
        model: model id / local dir (``gaspprobe.models.load``), a special name (``oracle:answers``,
            ``baseline:frequency``, ``baseline:random``) or an adapter object with ``generate``.
        data: question file or folder in the benchmark's schema, or ``"hf"`` for the hub dataset.
        video_root / image_root: where videos / images live (default: beside the question file).
        frames: frames per video (default: the card's, 32 for VSI-Bench); recorded.
        limit: evaluate only the first ``limit`` questions (dataset order).
        batch_size: samples per ``generate`` call (results do not depend on it).
        prompt_variant / parser: named non-default choices of the card (default: official).
        max_new_tokens: default the card's (16).
        seed: for ``baseline:random``.
        progress: show a rich progress bar with the running score.
        device: where a model given by name is loaded (default: the shard's device under
            accelerate/torchrun, else "cuda" when available, else "cpu"); not part of the config.
        judge: optional answer extractor for multiple-choice outputs the rule parser cannot read
            (callable ``judge(raw, sample) -> letter | None`` or ``"module:function"``); off by
            default, recorded in the config and the summary when used.
    Returns:
        :class:`BenchResult` with the run folder and its summary.
    """
    t0 = time.perf_counter()
    card = load_card(benchmark)
    out = Path(out)
    variant = prompt_variant or card.prompt_variant
    card.variant(variant)
    parser_name = card.check_parser(parser)
    k = frames if frames is not None else card.frames
    if card.format != "vsibench":
        k = None
    if batch_size < 1:
        raise GaspError(f"batch_size: expected >= 1, got {batch_size}")
    if k is not None and k < 1:
        raise GaspError(f"frames: expected >= 1, got {k}")
    judge_fn, judge_name = _resolve_judge(judge)
    model_str = model if isinstance(model, str) else None
    config = {"model": model_str or _object_name(model), "benchmark": card.name, "card_version": card.version,
              "data": str(data), "video_root": None if video_root is None else str(video_root),
              "image_root": None if image_root is None else str(image_root), "frames": k, "limit": limit,
              "prompt_variant": variant, "parser": parser_name,
              "max_new_tokens": int(max_new_tokens or card.max_new_tokens), "seed": seed, "judge": judge_name}
    state = _dist_state()
    is_main = state is None or state.is_main_process
    existing = _check_config(out, config)
    if existing is not None and existing.get("status") == "complete" and (out / SUMMARY).exists():
        summary = io.read_json(out / SUMMARY)
        if not summary.get("n_failed"):
            return BenchResult(out, summary)  # nothing left to do
        # a complete run with failed samples (a missing/corrupt video, say): retry just those, so a
        # repaired file is picked up; finished samples are never recomputed

    samples = _load(card, data, video_root, image_root, variant, limit)
    if device is None:  # each shard on its own accelerator; a single process on cuda:0 if there is one
        import torch

        device = str(state.device) if state is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    mdl, model_name = _resolve_model(model, samples, seed, device)
    manifest_extra = {"model": model_name, "benchmark": card.name, "card_version": card.version,
                      "options": {"batch_size": batch_size}}
    pred_path = out / PREDICTIONS
    # every process must see the same finished set: read it before the barrier, i.e. before any
    # process can start appending new records
    done = _latest(io.read_jsonl(pred_path) + [r for p in sorted(out.glob("predictions.rank*.jsonl"))
                                                 for r in io.read_jsonl(p)])
    todo = [s for s in samples if s.id not in done or done[s.id].get("failed")]
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        io.write_manifest(out, io.make_manifest("bench", config, seed=seed, status="running", **manifest_extra))
    my_path = pred_path
    if state is not None:
        state.wait_for_everyone()
        with state.split_between_processes(todo) as mine:
            todo = list(mine)
        my_path = out / f"predictions.rank{state.process_index}.jsonl"

    parse = _with_judge(_parser(card, parser_name), judge_fn)
    mnt = int(max_new_tokens or card.max_new_tokens)
    _generate_all(mdl, todo, card, parse, my_path, k, batch_size, mnt, progress and is_main, done,
                  None if state is None else state.process_index)

    if state is not None:
        state.wait_for_everyone()
    if is_main:
        shards = sorted(out.glob("predictions.rank*.jsonl"))
        if shards:  # gather the shards (this run's, or a crashed sharded run's) into one file
            with io.JsonlAppender(pred_path) as app:
                for p in shards:
                    for r in io.read_jsonl(p):
                        app.write(r)
            for p in shards:
                p.unlink()
        latest = _latest(io.read_jsonl(pred_path))
        meta = {"frames": k, "prompt_variant": variant, "parser": parser_name, "max_new_tokens": mnt,
                "data": str(data), "judge": judge_name, "seconds": round(time.perf_counter() - t0, 3)}
        summary = _finalize(out, card, samples, latest, model_name, meta)
        io.write_manifest(out, io.make_manifest("bench", config, seed=seed, status="complete", **manifest_extra))
    if state is not None:
        state.wait_for_everyone()
        summary = io.read_json(out / SUMMARY)
    return BenchResult(out, summary)


def _generate_all(mdl, todo: list[Sample], card: BenchmarkCard, parse: Callable, path: Path, k: int | None,
                  batch_size: int, max_new_tokens: int, show: bool, done: dict, rank: int | None = None) -> None:
    """Generate, parse, score and append a record per sample, ``batch_size`` samples per call."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from gaspprobe.cli._common import console

    loader = _VisualLoader(k)
    scores = [float(r.get("score") or 0.0) for r in done.values() if not r.get("failed")]
    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("running score {task.fields[score]}"), TimeRemainingColumn(),
                    console=console, disable=not show, transient=False)
    with prog, io.JsonlAppender(path) as app:
        task = prog.add_task(card.name, total=len(todo), score="-")
        for b in range(0, len(todo), batch_size):
            batch = todo[b: b + batch_size]
            ok: list[tuple[Sample, list, dict]] = []
            for s in batch:
                if not getattr(mdl, "needs_visuals", True):
                    ok.append((s, [], {}))
                    continue
                try:
                    vis, extra = loader(s)
                except DataError as e:  # one bad sample: recorded, scored 0, the run goes on
                    app.write(_record(s, None, None, 0.0, str(e)))
                    prog.advance(task)
                    continue
                ok.append((s, vis, extra))
            if not ok:
                continue
            if isinstance(mdl, _Special):
                raws = [mdl.answer(s) for s, _, _ in ok]
            else:
                raws = mdl.generate([(vis, s.prompt) for s, vis, _ in ok], max_new_tokens=max_new_tokens)
                if len(raws) != len(ok):
                    raise GaspError(f"model returned {len(raws)} answers for {len(ok)} prompts")
            for (s, _, extra), raw in zip(ok, raws):
                parsed, sc = score_sample(s, str(raw), parse, card)
                if rank is not None:
                    extra = {**extra, "process": rank}
                app.write(_record(s, str(raw), parsed, sc, None, extra))
                scores.append(sc)
            prog.update(task, advance=len(ok), score=f"{100 * sum(scores) / len(scores):.1f}")


# --------------------------------------------------------------------------- rescoring
def _unwrap(x: Any) -> str | None:
    while isinstance(x, (list, tuple)):
        if not x:
            return None
        x = x[0]
    return None if x is None else str(x)


def read_predictions(path: str | Path, samples: Sequence[Sample]) -> dict[str, str]:
    """Raw outputs by sample id from: our ``predictions.jsonl`` (``id``, ``raw``); lmms-eval's
    per-sample log (``doc_id``, ``doc``, ``filtered_resps``/``resps``: the id is ``doc['id']`` or
    ``doc['index']`` when logged, else the position ``doc_id`` in the dataset order); or a
    VLMEvalKit-style ``.tsv``/``.csv`` with ``index`` and ``prediction`` columns."""
    path = Path(path)
    if not path.is_file():
        raise DataError("predictions file not found", path=path)
    if path.suffix in (".tsv", ".csv"):
        import pandas as pd

        df = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        for c in ("index", "prediction"):
            if c not in df.columns:
                raise DataError(f"missing column {c!r} (VLMEvalKit predictions need index, prediction)", path=path)
        return {str(i): p for i, p in zip(df["index"], df["prediction"])}
    out: dict[str, str] = {}
    for n, r in enumerate(io.read_jsonl(path)):
        if not isinstance(r, dict):
            raise DataError(f"line {n + 1}: expected a JSON object", path=path)
        if "raw" in r and "id" in r:
            if r.get("failed"):
                continue
            out[str(r["id"])] = "" if r["raw"] is None else str(r["raw"])
        elif "doc_id" in r and ("filtered_resps" in r or "resps" in r):
            doc = r.get("doc") or {}
            sid = doc.get("id", doc.get("index")) if isinstance(doc, dict) else None
            if sid is None:
                try:
                    i = int(r["doc_id"])
                except (TypeError, ValueError, OverflowError):
                    raise DataError(f"line {n + 1}: doc_id {r['doc_id']!r} is not an integer", path=path) from None
                if not 0 <= i < len(samples):
                    raise DataError(f"line {n + 1}: doc_id {i} is outside the dataset ({len(samples)} rows)", path=path)
                sid = samples[i].id
            raw = _unwrap(r.get("filtered_resps")) if "filtered_resps" in r else _unwrap(r.get("resps"))
            if isinstance(sid, float):
                if not sid.is_integer():
                    raise DataError(f"line {n + 1}: doc id {sid!r} is not an integer", path=path)
                sid = int(sid)
            out[str(sid)] = raw or ""
        else:
            raise DataError(f"line {n + 1}: neither a gaspprobe record (id, raw) nor an lmms-eval sample "
                            f"(doc_id, resps/filtered_resps)", path=path)
    return out


def score(benchmark: str, data: str | Path, predictions: str | Path, out: str | Path, *,
          video_root: str | Path | None = None, image_root: str | Path | None = None,
          prompt_variant: str | None = None, parser: str | None = None, model: str | None = None) -> BenchResult:
    """Rescore predictions made elsewhere with this benchmark's official parsing and aggregation.

    Only samples with a prediction are scored (``n_missing`` counts the others); the run folder has
    the same files as :func:`run`.
    """
    card = load_card(benchmark)
    out = Path(out)
    variant = prompt_variant or card.prompt_variant
    parser_name = card.check_parser(parser)
    samples = _load(card, data, video_root, image_root, variant, None)
    raws = read_predictions(predictions, samples)
    known = {s.id for s in samples}
    unknown = [i for i in raws if i not in known]
    if unknown:
        raise DataError(f"{len(unknown)} prediction id(s) are not in the data (first: {unknown[0]!r})",
                        path=predictions)
    parse = _parser(card, parser_name)
    records = []
    for s in samples:
        if s.id in raws:
            parsed, sc = score_sample(s, raws[s.id], parse, card)
            records.append(_record(s, raws[s.id], parsed, sc, None))
    model_name = model or Path(predictions).stem
    config = {"mode": "score", "model": model_name, "benchmark": card.name, "card_version": card.version,
              "data": str(data), "predictions": str(predictions), "prompt_variant": variant, "parser": parser_name}
    out.mkdir(parents=True, exist_ok=True)
    io.atomic_write_text(out / PREDICTIONS, "".join(json.dumps(r) + "\n" for r in records))
    meta = {"frames": None, "prompt_variant": variant, "parser": parser_name, "data": str(data),
            "predictions": str(predictions), "judge": None}
    summary = _finalize(out, card, [s for s in samples if s.id in raws], _latest(records), model_name, meta)
    summary["n_missing"] = len(samples) - len(records)
    io.atomic_write_json(out / SUMMARY, summary)
    io.write_manifest(out, io.make_manifest("bench", config, status="complete", model=model_name,
                                            benchmark=card.name, card_version=card.version))
    return BenchResult(out, summary)
