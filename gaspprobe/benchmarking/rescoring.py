"""Rescoring predictions made elsewhere (``gaspprobe bench score``) with the card's official rules.

Reads our ``predictions.jsonl``, lmms-eval's per-sample logs or VLMEvalKit's ``.tsv``/``.csv``,
scores them with :mod:`gaspprobe.benchmarking.scoring` and publishes a bench run folder through the
run kernel (staged: the folder appears complete or not at all). The predictions file's content
hash is part of the run's identity, so rescoring a changed file into the same folder is refused
(naming ``predictions_sha256``) rather than answered from the old result.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

from gaspprobe import io
from gaspprobe.benchmarking.card import Sample, load_card
from gaspprobe.errors import DataError


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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def score(benchmark: str, data: str | Path, predictions: str | Path, out: str | Path, *,
          video_root: str | Path | None = None, image_root: str | Path | None = None,
          prompt_variant: str | None = None, parser: str | None = None, model: str | None = None,
          label: str | None = None, force: bool = False, wait: bool = False):
    """Rescore predictions made elsewhere with this benchmark's official parsing and aggregation.

    Only samples with a prediction are scored (``n_missing`` counts the others); the run folder has
    the same files as :func:`gaspprobe.benchmarking.runner.run`. Returns a ``BenchResult``.
    """
    import json

    from gaspprobe.benchmarking.scoring import BenchResult, load_samples
    from gaspprobe.benchmarking.scoring import (PREDICTIONS, SUMMARY, finalize, latest, parser_for, record,
                                                score_sample)
    from gaspprobe.runs import open_run

    card = load_card(benchmark)
    out = Path(out)
    variant = prompt_variant or card.prompt_variant
    parser_name = card.check_parser(parser)
    predictions = Path(predictions)
    samples = load_samples(card, data, video_root, image_root, variant, None)
    raws = read_predictions(predictions, samples)
    known = {s.id for s in samples}
    unknown = [i for i in raws if i not in known]
    if unknown:
        raise DataError(f"{len(unknown)} prediction id(s) are not in the data (first: {unknown[0]!r})",
                        path=predictions)
    model_name = model or predictions.stem
    config = {"mode": "score", "model": model_name, "benchmark": card.name, "card_version": card.version,
              "data": str(data), "predictions": str(predictions), "prompt_variant": variant, "parser": parser_name}
    with open_run(out, "bench", config, publish="staged", identity={"predictions_sha256": _sha256(predictions)},
                  label=label, force=force, wait=wait) as rk:
        if rk.cached and (out / SUMMARY).exists():
            return BenchResult(out, io.read_json(out / SUMMARY))
        parse = parser_for(card, parser_name)
        records = []
        for s in samples:
            if s.id in raws and not s.error:
                parsed, sc = score_sample(s, raws[s.id], parse, card)
                records.append(record(s, raws[s.id], parsed, sc, None))
        io.atomic_write_text(rk.dir / PREDICTIONS, "".join(json.dumps(r) + "\n" for r in records))
        meta = {"frames": None, "prompt_variant": variant, "parser": parser_name, "data": str(data),
                "predictions": str(predictions), "judge": None, "profile": None, "scorer": "generate",
                "official": True}
        summary = finalize(rk.dir, card, [s for s in samples if s.id in raws or s.error], latest(records),
                           model_name, meta, n_missing_extra=len([s for s in samples if not s.error]) - len(records))
        rk.complete(model=model_name, benchmark=card.name, card_version=card.version)
    return BenchResult(out, summary)
