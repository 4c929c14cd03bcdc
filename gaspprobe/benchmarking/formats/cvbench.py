"""CV-Bench (Tong et al., Cambrian-1, arXiv 2406.16860), the 3D half: relative depth and distance.

Source followed (read, not copied): lmms-eval ``lmms_eval/tasks/cv_bench/`` at 75571cfe
(``cv_bench_3d.yaml``: ``nyu-visionx/CV-Bench`` config ``3D`` split ``test``;
``_default_template_yaml``: pre_prompt, max_new_tokens 1024; ``utils.py``: ``cv_bench_doc_to_text``,
``cv_bench_doc_to_visual``, ``_extract_answer_letter``, ``cv_bench_process_results``,
``cv_bench_aggregate_results``).

Schema (checked): ``idx`` int, ``type`` str ("3D"), ``task`` str ("Depth" / "Distance"),
``image`` Image, ``question`` str, ``choices`` list[str] (two for the 3D tasks), ``answer`` str
``"(A)"``, ``prompt`` str (question, "Select from the following choices." and the ``(A) ..``
lines), ``source`` str ("Omni3D" for 3D).

Prompt: ``pre_prompt.format("A, B") + "\\n" + prompt`` (lmms-eval adds the newline after a
pre-prompt that already ends with one, so the text has a blank line; kept). Parser:
``lmms_eval_letter_prefix`` (as BLINK). Overall: accuracy over the 3D questions (lmms-eval
``cv_bench_acc``; the paper's CV-Bench overall averages 2D and 3D, which a 3D-only card cannot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gaspprobe.benchmarking.card import BenchmarkCard, Sample
from gaspprobe.benchmarking.formats import common as C

FIELDS = ("idx", "type", "task", "image", "question", "choices", "answer", "prompt", "source")
N_CHOICES = {"Depth": 2, "Distance": 2}


def build_prompt(doc: dict, variant: dict) -> str:
    letters = ", ".join(C.LETTERS[k] for k in range(len(doc["choices"])))
    return variant.get("pre_prompt", "").format(letters) + "\n" + doc["prompt"]


def load_samples(card: BenchmarkCard, data: str | Path, *, video_root: str | Path | None = None,
                 image_root: str | Path | None = None, prompt_variant: str | None = None) -> list[Sample]:
    rows, where, root, variant = C.open_rows(data, card, image_root, prompt_variant)
    samples: list[Sample] = []
    for i, row, rid, sid in C.keyed_rows(rows, where, FIELDS, "CV-Bench", "idx", "int"):
        task = C.text(row, "task", where, i, rid)
        if task not in card.question_types:
            raise C.row_error(where, i, rid, "task", f"{task!r} is not a task of {card.name} "
                                                     f"({', '.join(card.question_types)})")
        choices = C.str_list(row, "choices", where, i, rid)
        if task in N_CHOICES:
            C.check_count(choices, N_CHOICES[task], "choices", where, i, rid)
        C.text(row, "prompt", where, i, rid)
        ans = C.text(row, "answer", where, i, rid).strip().strip("()")
        if ans not in C.LETTERS[: len(choices)]:
            raise C.row_error(where, i, rid, "answer", f"{row['answer']!r} is not one of the option letters")
        image = C.image_path(row["image"], where, i, rid, "image", root)
        doc: dict[str, Any] = {k: row[k] for k in FIELDS if k != "image"}
        samples.append(Sample(
            id=sid, question_type=task, kind="mca", prompt=build_prompt(doc, variant), target=ans,
            task=card.tasks.get(task, task), options={C.LETTERS[j]: c for j, c in enumerate(choices)},
            visual={"images": [image]}, cluster=sid, doc=doc))
    return C.some(samples, where)
