"""MMSI-Bench (Yang et al., arXiv 2505.23764): 1,000 multi-image spatial questions, four options each.

Source followed (read, not copied): lmms-eval ``lmms_eval/tasks/mmsi_bench/`` at 75571cfe
(``msr_bench.yaml``: ``RunsenXu/MMSI-Bench`` split ``test``, greedy, max_new_tokens 2048, the
post-prompt; ``utils.py``: ``msr_doc_to_text``, ``msr_doc_to_visual``,
``extract_single_choice_with_word_boundary``, ``msr_process_results``, ``msr_aggregate_results``,
``CATEGORY_ALIASES``), which is the authors' own rule (``InternRobotics/MMSI-Bench`` README,
"Answer Extraction") widened to letters A-F, case-insensitive.

Schema (checked; the README's loading example names every column): ``id`` int, ``images``
list<binary> (encoded images), ``question_type`` str, ``question`` str (the options are written
inside the question text), ``answer`` str (a letter), ``thought`` str, plus
``mean_normed_duration_seconds`` and ``difficulty`` (not used).

Prompt: ``question.strip() + "\\nAnswer with the option's letter from the given choices directly.
Enclose the option's letter within ``."``; images first, in order. Overall: accuracy over all
questions ("average"); tasks: the question types with ASCII hyphens mapped to the en dashes lmms-eval
reports. Options for baselines are read from the question's ``\nOptions: A: .., B: ..`` text (the
form lmms-eval PR #1162's smoke test shows) when present; when the text does not have that form, the four letters A-D stand in (the harness never
reads the option texts).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gaspprobe.benchmarking.card import BenchmarkCard, Sample
from gaspprobe.benchmarking.formats import common as C

FIELDS = ("id", "images", "question_type", "question", "answer", "thought")
ALIASES = {f"Positional Relationship ({a}-{b})": f"Positional Relationship ({a}\u2013{b})"
           for a, b in (("Obj.", "Obj."), ("Cam.", "Obj."), ("Cam.", "Cam."), ("Obj.", "Reg."), ("Cam.", "Reg."),
                        ("Reg.", "Reg."))}
_OPTIONS = re.compile(r"Options?\s*:\s*(.*)\Z", flags=re.DOTALL)
_OPTION = re.compile(r"(?:^|[,\n]\s*)([A-D])\s*[:.]\s*")


def parse_options(question: str) -> dict[str, str]:
    """``{"A": text, ...}`` from a trailing ``Options: A: x, B: y, ...`` block; {} when absent."""
    m = _OPTIONS.search(question)
    if not m:
        return {}
    block = m.group(1)
    marks = list(_OPTION.finditer(block))
    out: dict[str, str] = {}
    for k, mk in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(block)
        out[mk.group(1)] = block[mk.end():end].strip().rstrip(",").strip()
    return out


def mmsi_choice(raw: str) -> str | None:
    """lmms-eval ``extract_single_choice_with_word_boundary`` (the letter part): the content of
    a ````x```` / ```x``` / ``{x}`` wrapper if any, then the first standalone letter A-F not followed
    by a space and a word (``"B"``, ``"`B`"``, ``"(B)"`` -> B; ``"A dog"`` -> no answer)."""
    pred = str(raw)
    for pat in (r"``([^`]*)``", r"`([^`]*)`", r"\{([^}]*)\}"):
        m = re.search(pat, pred)
        if m:
            pred = m.group(1)
    m = re.search(r"\b[A-F]\b(?!\s[a-zA-Z])", pred, flags=re.IGNORECASE)
    return m.group().upper() if m else None


def mmsi_backtick(raw: str, sample: Sample) -> str | None:
    """Parser of the ``mmsi`` card (:func:`mmsi_choice`; a letter outside the options is wrong)."""
    got = mmsi_choice(raw)
    return got if got in sample.options else None


def load_samples(card: BenchmarkCard, data: str | Path, *, video_root: str | Path | None = None,
                 image_root: str | Path | None = None, prompt_variant: str | None = None) -> list[Sample]:
    rows, where, root, variant = C.open_rows(data, card, image_root, prompt_variant)
    post = variant.get("post_prompt", "")
    samples: list[Sample] = []
    for i, row, rid, sid in C.keyed_rows(rows, where, FIELDS, "MMSI-Bench", "id", "int"):
        qt = C.text(row, "question_type", where, i, rid)
        qt = ALIASES.get(qt, qt)
        question = C.text(row, "question", where, i, rid)
        options = parse_options(question)
        if options:
            if list(options) != list("ABCD"):
                raise C.row_error(where, i, rid, "question", f"expected options A, B, C, D in the question, "
                                                             f"found {', '.join(options) or 'none'}")
        else:
            options = {k: "" for k in "ABCD"}
        ans = C.text(row, "answer", where, i, rid).strip()
        if ans not in options:
            raise C.row_error(where, i, rid, "answer", f"{ans!r} is not one of A, B, C, D")
        images = C.image_list(row["images"], where, i, rid, "images", root)
        doc: dict[str, Any] = {k: row[k] for k in ("id", "question_type", "question", "answer")}
        q = question.strip()
        samples.append(Sample(
            id=sid, question_type=qt, kind="mca", prompt=variant.get("pre_prompt", "") + q + post, target=ans,
            task=card.tasks.get(qt, qt), options=options, visual={"images": images}, cluster=sid, doc=doc))
    return C.some(samples, where)
