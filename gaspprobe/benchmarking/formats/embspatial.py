"""EmbSpatial-Bench (Du et al., ACL 2024, arXiv 2406.05756): spatial relations from an embodied view.

Source followed (read, not copied): lmms-eval ``lmms_eval/tasks/embspatial/`` at 75571cfe
(``_default_template_yaml``: ``FlagEval/EmbSpatial-Bench`` split ``test``, pre_prompt,
max_new_tokens 1024; ``utils.py``: ``embspatial_doc_to_text``, ``embspatial_doc_to_visual``,
``_extract_answer_letter``, ``embspatial_process_results``, ``embspatial_aggregate_results`` and
the per-source accuracies).

Schema (checked): ``question_id`` str, ``question`` str, ``answer_options`` list[str] (2 to 4),
``answer`` int (index into the options), ``relation`` str (the reported sub-task), ``image`` Image;
``data_source`` str (ai2thor / mp3d / scannet) when present (the harness tolerates its absence).

Prompt: ``"Note: You only need to respond with A, B, C, D without providing any additional
information.\\n" + question + "\\n" + "A) opt\\nB) opt..."`` (the letters in the pre-prompt are fixed
in the harness, whatever the number of options). Parser ``lmms_eval_letter_prefix``. Overall:
accuracy over all questions (``embspatial_acc``); tasks are the relations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gaspprobe.benchmarking.card import BenchmarkCard, Sample
from gaspprobe.benchmarking.formats import common as C

FIELDS = ("question_id", "question", "answer_options", "answer", "relation", "image")
OPTIONAL = ("data_source",)  # lmms-eval reads it with .get(..., "unknown")


def build_prompt(doc: dict, variant: dict) -> str:
    lines = "\n".join(f"{C.LETTERS[k]}) {o}" for k, o in enumerate(doc["answer_options"]))
    return variant.get("pre_prompt", "") + doc["question"] + "\n" + lines


def load_samples(card: BenchmarkCard, data: str | Path, *, video_root: str | Path | None = None,
                 image_root: str | Path | None = None, prompt_variant: str | None = None) -> list[Sample]:
    rows, where, root, variant = C.open_rows(data, card, image_root, prompt_variant)
    samples: list[Sample] = []
    for i, row, rid, sid in C.keyed_rows(rows, where, FIELDS, "EmbSpatial-Bench", "question_id"):
        # the relation names are not listed by the harness: any string is a task of its own
        rel = C.text(row, "relation", where, i, rid)
        C.text(row, "question", where, i, rid)
        opts = C.str_list(row, "answer_options", where, i, rid)
        C.check_count(opts, (2, 3, 4), "answer_options", where, i, rid)
        a = row["answer"]
        if isinstance(a, str) and a.strip().isdigit():  # a TSV cell
            a = int(a)
        if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a < len(opts):
            raise C.row_error(where, i, rid, "answer", f"expected an option index 0..{len(opts) - 1}, got {a!r}")
        image = C.image_path(row["image"], where, i, rid, "image", root)
        doc: dict[str, Any] = {k: row[k] for k in FIELDS if k != "image"} | {k: row.get(k) for k in OPTIONAL}
        samples.append(Sample(
            id=sid, question_type=rel, kind="mca", prompt=build_prompt(doc, variant), target=C.LETTERS[a],
            task=card.tasks.get(rel, rel), options={C.LETTERS[j]: o for j, o in enumerate(opts)},
            visual={"images": [image]}, cluster=sid, doc=doc))
    return C.some(samples, where)
