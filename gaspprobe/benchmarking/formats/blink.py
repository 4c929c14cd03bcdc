"""BLINK (Fu et al., arXiv 2404.12390): four spatial subtasks, one card each, with a circular option.

Source followed (read, not copied): lmms-eval ``lmms_eval/tasks/blink/`` at 75571cfe
(``_default_template_yaml``: ``BLINK-Benchmark/BLINK``, split ``val``, max_new_tokens 1024;
``utils.py``: ``blink_doc_to_text``, ``blink_doc_to_visual``, ``_extract_answer_letter``,
``blink_process_results``, ``blink_aggregate_results``). The authors' own runner
(``zeyofu/BLINK_Benchmark`` ``eval/``) sends the dataset's ``prompt`` field to GPT-4V with the
images; lmms-eval adds a one-line pre-prompt naming the letters, which we keep as the default.

Schema (HF config per subtask, split ``val``; every field checked): ``idx`` str, ``question`` str,
``sub_task`` str, ``image_1`` .. ``image_4`` Image (``image_3``/``image_4`` null when unused),
``choices`` list[str], ``answer`` str ``"(A)"``, ``prompt`` str: the question, ``"\\nSelect from the
following choices.\\n"`` and one ``"(A) choice"`` line per choice.

Prompt (official variant): ``"Note: You only need to respond with A, B without providing any
additional information.\\n" + prompt`` (letters: one per choice). Images in order image_1..image_4.
Parser ``lmms_eval_letter_prefix``: the first letter at the start of the stripped reply, after
optional ``(`` / spaces (``"(B) left"`` -> B; ``"The answer is B"`` -> T, wrong, as in lmms-eval
at 75571cfe). Option ``lmms_eval_073_letter``: lmms-eval 0.7.3's later rule (valid letters only;
terse line, then the last "answer is X", the last "(X)", a leading letter), which the
``lmms-eval`` harness profile uses.
Overall: accuracy over questions (lmms-eval ``blink_acc``).

Circular (prompt variant ``circular``, not the default): every question is asked once per cyclic
shift of its choices (:func:`~gaspprobe.benchmarking.formats.common.rotations`), the ``(A) ..``
lines of the prompt rebuilt for each shift; a question counts as correct only when every shift is
answered correctly (aggregation ``circular_micro``). VLMEvalKit's ``BLINK_circular`` applies the
same rule with its own MCQ prompt; ours keeps the lmms-eval prompt so the two variants differ only
in the rotation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gaspprobe.benchmarking.card import BenchmarkCard, Sample
from gaspprobe.benchmarking.formats import common as C

FIELDS = ("idx", "question", "sub_task", "image_1", "image_2", "image_3", "image_4", "choices", "answer", "prompt")
IMAGE_FIELDS = ("image_1", "image_2", "image_3", "image_4")
# number of choices per spatial subtask (left/right; A/B closer; yes/no; four marked points)
N_CHOICES = {"Multi-view_Reasoning": 2, "Relative_Depth": 2, "Spatial_Relation": 2, "Visual_Correspondence": 4}
_CHOICE_LINE = re.compile(r"^\(([A-Z])\) ")
_LETTER_PREFIX = re.compile(r"[\(\s]*([A-Z])[\)\.\s]*", flags=re.IGNORECASE)


def letter_prefix(raw: str) -> str:
    """lmms-eval ``_extract_answer_letter``: the letter at the start of the stripped text after
    optional ``(`` / spaces, upper-cased; "" when the text does not start with a letter."""
    m = _LETTER_PREFIX.match(str(raw).strip())
    return m.group(1).upper() if m else ""


def lmms_eval_letter_prefix(raw: str, sample: Sample) -> str | None:
    """Parser shared by BLINK, CV-Bench and EmbSpatial: :func:`letter_prefix`, None when that
    letter is not an option (scored wrong either way, as lmms-eval's string comparison)."""
    got = letter_prefix(raw)
    return got if got in sample.options else None


def _letter_073(raw: str, letters: str) -> str:
    """The option letter lmms-eval 0.7.3's BLINK ``_extract_answer_letter`` reads, over the valid
    ``letters`` only, trying four rules in order (our implementation of its documented behaviour):
    a terse first line (at most 4 characters: ``B``, ``(B)``, ``B.``); the LAST "answer is X" /
    "answer: X" statement; the LAST parenthesised letter ``(X)``; a leading letter. "" when none."""
    letters = "".join(c for c in str(letters).upper() if "A" <= c <= "Z")
    if not letters:
        return ""
    text = str(raw).strip()
    ok = letters
    first = text.split("\n", 1)[0].strip()
    if len(first) <= 4:
        m = re.fullmatch(rf"\(?([{ok}])\)?[.\s:,)]*", first, flags=re.IGNORECASE)
        if m:
            return m.group(1).upper()
    said = re.findall(rf"answers?(?:\s+is)?\s*[:\-]?\s*\(?([{ok}])\)?(?![A-Za-z])", text, flags=re.IGNORECASE)
    if said:
        return said[-1].upper()
    paren = re.findall(rf"\(([{ok}])\)", text)
    if paren:
        return paren[-1].upper()
    m = re.match(rf"[(\s]*([{ok}])[).\s]*", text, flags=re.IGNORECASE)
    return m.group(1).upper() if m else ""


def lmms_eval_073_letter(raw: str, sample: Sample) -> str | None:
    """Parser of lmms-eval 0.7.3's BLINK task (later than the 75571cfe rule the cards default to):
    :func:`_letter_073` over this question's letters, so "The answer is (B)." reads B, not T."""
    got = _letter_073(raw, "".join(k for k in sample.options if isinstance(k, str) and len(k) == 1))
    return got if got in sample.options else None


def split_prompt(prompt: str, choices: list[str]) -> str:
    """The prompt without its trailing ``(A) choice`` lines; raises ValueError when those lines
    are not exactly the choices in order (then the prompt cannot be rotated faithfully)."""
    lines = prompt.split("\n")
    n = len(choices)
    tail = lines[-n:] if n else []
    want = [f"({C.LETTERS[k]}) {c}" for k, c in enumerate(choices)]
    if tail != want:
        raise ValueError("the prompt does not end with one '(A) choice' line per choice")
    return "\n".join(lines[:-n])


def build_prompt(body: str, choices: list[str], variant: dict) -> str:
    """``pre_prompt.format(letters) + body + choice lines`` (lmms-eval ``blink_doc_to_text``)."""
    letters = ", ".join(C.LETTERS[k] for k in range(len(choices)))
    pre = variant.get("pre_prompt", "").format(letters)
    return pre + body + "\n" + "\n".join(f"({C.LETTERS[k]}) {c}" for k, c in enumerate(choices))


def load_samples(card: BenchmarkCard, data: str | Path, *, video_root: str | Path | None = None,
                 image_root: str | Path | None = None, prompt_variant: str | None = None) -> list[Sample]:
    """BLINK rows -> samples (dataset order; with the ``circular`` variant, n per question). A card
    with ``data_files`` (``synthetic_blink``) reads each subtask file of a folder in turn."""
    samples: list[Sample] = []
    for src in C.sources(data, card):
        samples += _load_file(card, src, image_root, prompt_variant)
    return C.some(samples, data)


def _load_file(card: BenchmarkCard, data: Any, image_root: Any, prompt_variant: str | None) -> list[Sample]:
    rows, where, root, variant = C.open_rows(data, card, image_root, prompt_variant)
    circular = bool(variant.get("circular", False))
    samples: list[Sample] = []
    for i, row, rid, sid in C.keyed_rows(rows, where, FIELDS, "BLINK", "idx", "text"):
        sub = C.text(row, "sub_task", where, i, rid).replace(" ", "_")
        if sub not in card.question_types:
            raise C.row_error(where, i, rid, "sub_task", f"{sub!r} is not a subtask of {card.name} "
                                                          f"({', '.join(card.question_types)})")
        choices = C.str_list(row, "choices", where, i, rid)
        if sub in N_CHOICES:
            C.check_count(choices, N_CHOICES[sub], "choices", where, i, rid)
        prompt = C.text(row, "prompt", where, i, rid)
        try:
            body = split_prompt(prompt, choices)
        except ValueError as e:
            raise C.row_error(where, i, rid, "prompt", str(e)) from None
        ans = C.text(row, "answer", where, i, rid).strip().strip("()")
        if ans not in C.LETTERS[: len(choices)]:
            raise C.row_error(where, i, rid, "answer", f"{row['answer']!r} is not one of "
                                                        f"({')('.join(C.LETTERS[:len(choices)])})")
        images = [C.image_path(row[f], where, i, rid, f, root) for f in IMAGE_FIELDS if row.get(f) is not None]
        if not images:
            raise C.row_error(where, i, rid, "image_1", "no image")
        doc: dict[str, Any] = {k: row[k] for k in ("idx", "question", "sub_task", "choices", "answer", "prompt")}
        shifts = C.rotations(choices, C.LETTERS.index(ans)) if circular else [(choices, C.LETTERS.index(ans))]
        for k, (opts, a) in enumerate(shifts):
            samples.append(Sample(
                id=sid if k == 0 else f"{sid}#r{k}", question_type=sub, kind="mca",
                prompt=build_prompt(body, opts, variant), target=C.LETTERS[a], task=card.tasks.get(sub, sub),
                options={C.LETTERS[j]: o for j, o in enumerate(opts)}, visual={"images": images},
                cluster=sid,
                pair_idx=sid if circular else None, doc={**doc, "rotation": k}))
    return samples
