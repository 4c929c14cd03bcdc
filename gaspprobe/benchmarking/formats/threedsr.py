"""3DSRBench (Ma et al., arXiv 2412.07825): 3D spatial reasoning on one image, with circular and
flip evaluation.

Source followed (read, not copied): lmms-eval ``lmms_eval/tasks/3dsrbench/`` at 75571cfe
(``_default_template_yaml``: ``oscarqjh/3DSRBench_lmmseval``, the post-prompt, greedy,
max_new_tokens 4096; ``3dsrbench.yaml`` config ``3dsr``; ``3dsrbench_circular.yaml`` config
``3dsr_circular``; ``utils.py``: ``doc_to_text`` (VLMEvalKit's MCQ layout), ``extract_answer``,
``CATEGORY_MAPPING``, ``get_qid_key``, ``aggregate_{vanilla,flip,circular,flip_circular}_accuracy``).

Schema (checked): ``index``, ``question`` str, ``A``, ``B`` str, ``C``, ``D`` str or null / "nan"
(two to four options), ``answer`` str (a letter), ``category`` str (12 detailed categories),
``image`` Image; the circular config adds ``qid`` str: an 8-character base id, ``-N`` for the N-th
option rotation and ``-flip`` for the answer-flipped twin (``"VIN6MS3J-flip-1"``).

Prompt: ``"Question: {q}\\nOptions:\\nA. ..\\nB. ..\\n" + "Please select the correct answer from the
options above. \\n"``. Parser ``threedsr_patterns`` (``extract_answer``'s patterns in order).
Tasks: the four main categories (height, location, orientation, multi_object).

Cards: ``threedsr`` (config 3dsr) reports accuracy over questions; ``threedsr_circular`` (config
3dsr_circular, where the dataset itself holds the rotations) reports as ``overall`` the circular
accuracy (every rotation of a question, flips kept apart, correct), the headline EASI prefers; the
vanilla and flip+circular accuracies go under ``extra`` (and ``overall_micro`` = vanilla). lmms-eval's
flip-only accuracy needs each row's full ``qid``, which the scores table does not carry: not reported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from gaspprobe.benchmarking.card import BenchmarkCard, Sample
from gaspprobe.benchmarking.formats import common as C

FIELDS = ("index", "question", "A", "B", "C", "D", "answer", "category", "image")
MAIN_CATEGORY = {
    "height_higher": "height", "location_above": "location", "location_closer_to_camera": "location",
    "location_next_to": "location", "orientation_in_front_of": "orientation",
    "orientation_on_the_left": "orientation", "orientation_viewpoint": "orientation",
    "multi_object_closer_to": "multi_object", "multi_object_facing": "multi_object",
    "multi_object_viewpoint_towards_object": "multi_object", "multi_object_parallel": "multi_object",
    "multi_object_same_direction": "multi_object",
}
_PATTERNS = [r"^([A-D])[\.\s\)]", r"^([A-D])$", r"[Aa]nswer[:\s]+([A-D])", r"[Tt]he answer is[:\s]+([A-D])",
             r"[Mm]y answer is[:\s]+([A-D])", r"\(([A-D])\)", r"([A-D])\.", r"\b([A-D])\b"]


def extract_answer(text: str) -> str | None:
    """lmms-eval 3DSRBench ``extract_answer``: the first of its patterns that matches the stripped
    reply ("A." / "A" / "Answer: A" / "The answer is A" / "(A)" / "A." / any standalone A-D)."""
    text = str(text).strip()
    if not text:
        return None
    for p in _PATTERNS:
        m = re.search(p, text)
        if m:
            return m.group(1).upper()
    return None


def threedsr_patterns(raw: str, sample: Sample) -> str | None:
    got = extract_answer(raw)
    return got if got in sample.options else None


def circular_key(qid: str) -> str:
    """``get_qid_key(mode="circular")``: rotations grouped, flips apart ("X-flip-2" -> "X-flip")."""
    return qid[:13] if "-flip" in qid else qid[:8]


def flip_key(qid: str) -> str:
    """``aggregate_flip_accuracy``'s key: a question and its flip ("X-1", "X-flip-1" -> "X-1")."""
    return qid.replace("-flip", "")


def _option(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and v != v):
        return None
    s = str(v)
    return None if s.lower() == "nan" or s == "" else s


def build_prompt(question: str, options: dict[str, str], variant: dict) -> str:
    text = variant.get("pre_prompt", "") + f"Question: {question}\n"
    if options:
        text += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items())
    return text + variant.get("post_prompt", "")


def load_samples(card: BenchmarkCard, data: str | Path, *, video_root: str | Path | None = None,
                 image_root: str | Path | None = None, prompt_variant: str | None = None) -> list[Sample]:
    rows, where, root, variant = C.open_rows(data, card, image_root, prompt_variant)
    circular = card.dataset.config == "3dsr_circular" or bool(variant.get("circular", False))
    samples: list[Sample] = []
    fields = FIELDS + (("qid",) if circular else ())
    for i, row, rid, sid in C.keyed_rows(rows, where, fields, "3DSRBench", "index", duplicate="duplicate index"):
        cat = C.text(row, "category", where, i, rid)
        if cat not in card.question_types:
            raise C.row_error(where, i, rid, "category", f"unknown category {cat!r}")
        question = C.text(row, "question", where, i, rid)
        options = {k: o for k in "ABCD" if (o := _option(row[k])) is not None}
        if list(options) != list("ABCD")[: len(options)]:
            raise C.row_error(where, i, rid, "options", f"options must be A, B[, C[, D]] without gaps, got "
                                                        f"{', '.join(options)}")
        C.check_count(options, (2, 3, 4), "options", where, i, rid)
        ans = C.text(row, "answer", where, i, rid).strip()
        if ans not in options:
            raise C.row_error(where, i, rid, "answer", f"{ans!r} is not one of {', '.join(options)}")
        qid = None
        if circular:
            qid = C.text(row, "qid", where, i, rid)
            if len(qid) < 8:
                raise C.row_error(where, i, rid, "qid", f"expected an 8-character base id, got {qid!r}")
        image = C.image_path(row["image"], where, i, rid, "image", root)
        doc: dict[str, Any] = {k: row[k] for k in FIELDS if k != "image"} | ({"qid": qid} if qid else {})
        samples.append(Sample(
            id=sid, question_type=cat, kind="mca", prompt=build_prompt(question, options, variant), target=ans,
            task=card.tasks.get(cat, MAIN_CATEGORY.get(cat, cat)), options=options, visual={"images": [image]},
            cluster=qid[:8] if qid else sid,
            pair_idx=circular_key(qid) if qid else None, doc=doc))
    return C.some(samples, where)


def grouped_accuracy(scores: Sequence[float], keys: Sequence[str]) -> float:
    """Fraction of groups (by key) whose every score is 1 (product rule, as lmms-eval)."""
    s, n = C.group_scores(scores, keys)
    return s / n if n else float("nan")


def threedsr_circular(df) -> dict:
    """Aggregation of ``threedsr_circular``: ``overall`` = circular accuracy (groups by
    ``pair_idx`` = :func:`circular_key`); ``extra``: vanilla, circular and flip+circular accuracies
    (x100; flip+circular groups by the 8-character base id, the first 8 characters of ``pair_idx``)."""
    out = C.circular_micro(df)
    scores = df["score"].tolist()
    keys = ["" if k is None else str(k) for k in df["pair_idx"].tolist()]
    out["extra"] = {
        "vanilla_accuracy": out["overall_micro"],
        "circular_accuracy": out["overall"],
        "flip_circular_accuracy": 100.0 * grouped_accuracy(scores, [k[:8] for k in keys]) if len(df) else float("nan"),
    }
    return out
