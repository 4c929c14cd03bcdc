"""ViewSpatial-Bench (Li et al., arXiv 2505.21500): direction and orientation questions asked from
the camera's or a person's viewpoint.

Source followed (read, not copied): lmms-eval ``lmms_eval/tasks/viewspatial/`` at 75571cfe
(``viewspatial.yaml``: ``oscarqjh/ViewSpatial_lmmseval`` config ``default`` split ``test``, no
generation kwargs (the harness defaults); ``utils.py``: ``viewspatial_doc_to_text`` ("prompt format
from viewspatial bench paper"), ``extract_option``, ``viewspatial_process_results``,
``viewspatial_aggregate_results`` and the five per-type accuracies). Record layout as the authors'
``ZJU-REAL/ViewSpatial-Bench`` ``eval/ViewSpatial-Bench.json``.

Schema (checked): ``question_type`` str (five types), ``images`` list of Image (the lmms-eval
mirror; the authors' JSON has ``image_path``, a list of paths relative to ``--image-root``, accepted
instead), ``question`` str, ``answer`` str ``"C. back"``, ``choices`` str, one ``"A. front"`` line per
option. Rows carry no id: the id is the row number.

Prompt: ``"Question: {question}\\nChoices: {choices}\\nReply only to the corresponding
option.\\nAnswer:"``. Parser ``viewspatial_last_line``: the first standalone A-D (any case) in the
reply's last line. Overall: accuracy over all questions; tasks: the five question types.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gaspprobe.benchmarking.card import BenchmarkCard, Sample
from gaspprobe.benchmarking.formats import common as C

FIELDS = ("question_type", "question", "answer", "choices")
_CHOICE = re.compile(r"^([A-D])\. ?(.*)$")


def extract_option(text: str) -> str | None:
    """lmms-eval ``extract_option``: the first standalone A-D (case-insensitive), upper-cased."""
    m = re.search(r"\b([A-D])\b", str(text), flags=re.IGNORECASE)
    return m.group(1).upper() if m else None


def viewspatial_last_line(raw: str, sample: Sample) -> str | None:
    """lmms-eval ``viewspatial_process_results``: :func:`extract_option` of the reply's last line."""
    got = extract_option(str(raw).split("\n")[-1])
    return got if got in sample.options else None


def parse_choices(choices: str) -> dict[str, str]:
    """``"A. front\\nB. left"`` -> {"A": "front", "B": "left"}; ValueError unless every line is an
    option and the letters run A, B, ... in order."""
    out: dict[str, str] = {}
    for line in choices.split("\n"):
        m = _CHOICE.match(line.strip())
        if not m:
            raise ValueError(f"line {line!r} is not an 'A. option' line")
        out[m.group(1)] = m.group(2)
    if list(out) != list("ABCD")[: len(out)]:
        raise ValueError(f"option letters {', '.join(out)} do not run A, B, ...")
    return out


def build_prompt(question: str, choices: str, variant: dict) -> str:
    post = variant.get("post_prompt", "Reply only to the corresponding option.\nAnswer:")
    return f"Question: {question}\nChoices: {choices}\n" + post


def load_samples(card: BenchmarkCard, data: str | Path, *, video_root: str | Path | None = None,
                 image_root: str | Path | None = None, prompt_variant: str | None = None) -> list[Sample]:
    rows, where, root, variant = C.open_rows(data, card, image_root, prompt_variant)
    samples: list[Sample] = []
    for i, row, _, sid in C.keyed_rows(rows, where, FIELDS, "ViewSpatial-Bench", None):
        if "images" not in row and "image_path" not in row:
            raise C.row_error(where, i, None, "images", "missing field (or image_path)")
        field = "images" if "images" in row else "image_path"
        qt = C.text(row, "question_type", where, i, None)
        if qt not in card.question_types:
            raise C.row_error(where, i, None, "question_type", f"unknown question type {qt!r}")
        question = C.text(row, "question", where, i, None)
        choices = C.text(row, "choices", where, i, None)
        try:
            options = parse_choices(choices)
        except ValueError as e:
            raise C.row_error(where, i, None, "choices", str(e)) from None
        C.check_count(options, (2, 3, 4), "choices", where, i, None)
        answer = C.text(row, "answer", where, i, None)
        target = extract_option(answer)
        if target not in options:
            raise C.row_error(where, i, None, "answer", f"{answer!r} names no option of {', '.join(options)}")
        images = C.image_list(row[field], where, i, None, field, root)
        doc: dict[str, Any] = {k: row[k] for k in FIELDS}
        samples.append(Sample(
            id=sid, question_type=qt, kind="mca", prompt=build_prompt(question, choices, variant),
            target=target, task=card.tasks.get(qt, qt), options=options, visual={"images": images}, cluster=sid,
            doc=doc))
    return C.some(samples, where)
