"""MindCube-Tiny (Yin et al., "Spatial Mental Modeling from Limited Views", arXiv 2506.21458):
questions about a scene seen from a few views (around / among / rotation set-ups).

Source followed (read, not copied): lmms-eval ``lmms_eval/tasks/mindcube/`` at 75571cfe
(``mindcube_tiny.yaml``: ``oscarqjh/MindCube_lmmseval`` config ``tiny`` split ``combined``;
``_default_template_yaml``: greedy, max_new_tokens 4096; ``utils.py``: ``mindcube_doc_to_text``
(the row's ``input_prompt``), ``mindcube_doc_to_messages`` (images interleaved at the ``<image>``
placeholders), ``extract_answer`` ("taken directly from the official mindcube codebase"),
``mindcube_process_results`` (the setting from the id prefix), ``mindcube_aggregate_results``).

Schema (checked): ``id`` str (``among_...``, ``around_...`` / ``aroundnew_...``, ``rotation_...``),
``images`` list of Image, ``question`` str, ``input_prompt`` str (the full text, with one
``<image>`` placeholder per image and the options as ``A. ...`` lines), ``gt_answer`` str (a letter).

Prompt: ``input_prompt`` with the ``<image>`` placeholders removed and each remaining part stripped
and joined by newlines; all images go first (gaspprobe's runner does not interleave; noted as a
deviation). Parser ``mindcube_extract`` (the official ``extract_answer``). Overall: accuracy over all
questions; tasks: around, among, rotation (``other`` for any other id prefix).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gaspprobe.benchmarking.card import BenchmarkCard, Sample
from gaspprobe.benchmarking.formats import common as C

FIELDS = ("id", "images", "question", "input_prompt", "gt_answer")
_OPT_LINE = re.compile(r"^\s*([A-E])\.\s*(.+?)\s*$", flags=re.MULTILINE)
_OPT_INLINE = re.compile(r"(?:^|\s)([A-E])\.\s+(.*?)(?=\s+[A-E]\.\s|\s*$)", flags=re.DOTALL)


def setting(row_id: str) -> str:
    """lmms-eval ``mindcube_process_results``: the id's prefix before the first "_"."""
    first = row_id.split("_", 1)[0]
    return {"among": "among", "rotation": "rotation", "around": "around", "aroundnew": "around"}.get(first, "other")


def scene_group(row_id: str) -> str:
    """The scene set a question belongs to (``among_group693_q1_5_2`` -> ``among_group693``): the
    bootstrap cluster, since the questions of one group share their views."""
    return "_".join(row_id.split("_")[:2])


def extract_answer(text: str) -> str | None:
    """The official MindCube ``extract_answer`` (as lmms-eval ships it): pattern priorities, the
    last match of the first pattern that matches wins."""
    if not text:
        return None
    m = list(re.finditer(r"([A-E])\.", text))
    if m:
        return m[-1].group(1)
    sec = re.search(r"<Answer>(.*?)(?:<|$)", text, re.DOTALL)
    if sec:
        for p in (r"[Mm]y answer is ([A-E])", r"[Mm]y answer is ([A-E])\.", r"[Tt]he answer is ([A-E])",
                  r"(?:Answer: )?([A-E])\.", r"\b([A-E])\b"):
            m = list(re.finditer(p, sec.group(1)))
            if m:
                return m[-1].group(1)
    for p in (r'(?:Answer: )?([A-E])\. [A-Za-z0-9 \-\(\)\'",]+(?=(?:\n|$|\.|"))',
              r'(?:Answer: )?([A-E])\. [A-Za-z0-9 \-\(\)\'"]+', r"(?:^|\n)(?:Answer: )?([A-E])(?:\.|$|\s)",
              r"[\*\"]([A-E])[\*\"]", r"\bAnswer:?\s*([A-E])\b", r"[Mm]y answer is ([A-E])",
              r"[Mm]y answer is ([A-E])\.", r"answer is ([A-E])"):
        m = list(re.finditer(p, text))
        if m:
            return m[-1].group(1)
    lines = text.split("\n")
    hits = [mm.group(1) for line in lines if (mm := re.search(r'([A-E])\. [A-Za-z0-9 \-\(\)\'",]+', line))]
    if hits:
        return hits[-1]
    for line in reversed(lines):
        mm = re.search(r"\b([A-E])\b", line)
        if mm:
            return mm.group(1)
    return None


def mindcube_extract(raw: str, sample: Sample) -> str | None:
    got = extract_answer(str(raw).strip())
    return got if got in sample.options else None


def parse_options(prompt: str) -> dict[str, str]:
    """Options from ``A. ...`` lines of the prompt (else inline ``A. x B. y``); letters from A in order."""
    found = {m.group(1): m.group(2) for m in _OPT_LINE.finditer(prompt)}
    if len(found) < 2:
        found = {m.group(1): m.group(2).strip() for m in _OPT_INLINE.finditer(prompt)}
    letters = list(found)
    return found if letters == list("ABCDE")[: len(letters)] else {}


def build_prompt(input_prompt: str, variant: dict) -> str:
    parts = [p.strip() for p in input_prompt.split("<image>")]
    return variant.get("pre_prompt", "") + "\n".join(p for p in parts if p) + variant.get("post_prompt", "")


def load_samples(card: BenchmarkCard, data: str | Path, *, video_root: str | Path | None = None,
                 image_root: str | Path | None = None, prompt_variant: str | None = None) -> list[Sample]:
    rows, where, root, variant = C.open_rows(data, card, image_root, prompt_variant)
    samples: list[Sample] = []
    for i, row, rid, sid in C.keyed_rows(rows, where, FIELDS, "MindCube", "id", "text"):
        prompt = C.text(row, "input_prompt", where, i, rid)
        options = parse_options(prompt)
        if len(options) < 2:
            raise C.row_error(where, i, rid, "input_prompt", "no 'A. ...' option lines found")
        ans = C.text(row, "gt_answer", where, i, rid).strip()
        if ans not in options:
            raise C.row_error(where, i, rid, "gt_answer", f"{ans!r} is not one of {', '.join(options)}")
        images = C.image_list(row["images"], where, i, rid, "images", root)
        n_ph = prompt.count("<image>")
        if n_ph and n_ph != len(images):
            raise C.row_error(where, i, rid, "images", f"{len(images)} images for {n_ph} <image> placeholders")
        st = setting(sid)
        doc: dict[str, Any] = {k: row[k] for k in FIELDS if k != "images"}
        samples.append(Sample(
            id=sid, question_type=st, kind="mca", prompt=build_prompt(prompt, variant), target=ans,
            task=card.tasks.get(st, st), options=options, visual={"images": images}, cluster=scene_group(sid),
            doc=doc))
    return C.some(samples, where)
