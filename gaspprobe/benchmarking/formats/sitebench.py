"""SITE (Wang et al., "SITE: towards Spatial Intelligence Thorough Evaluation", arXiv 2505.05456):
multiple-choice spatial questions over images (config ``image_test``) or a video (``video_test``),
scored by chance-adjusted accuracy.

Source followed (read, not copied): lmms-eval ``lmms_eval/tasks/sitebench/`` at 75571cfe, itself
"taken directly from" ``wenqi-wang20/SITE-Bench`` ``eval_scripts/sitebench/`` (``site_image.yaml``:
``franky-veteran/SITE-Bench`` config ``image_test`` split ``test``, images under
``$HF_HOME/sitebench``, greedy, max_new_tokens 1024; ``utils.py``: ``spatial_doc_to_text_image``,
``spatial_doc_to_visual_image``, ``parse_multi_choice_response``, ``spatial_process_results``,
``spatial_aggregate_results``).

Schema (checked): ``question`` str, ``options`` list[str], ``answer`` str (a letter),
``category`` str (six categories), ``dataset`` str (source benchmark), ``visual`` list of image
paths relative to ``$HF_HOME/sitebench`` (``--image-root``); ``id`` when present, else the row
number.

Prompt (``official``): ``"Question: {q}\\nOptions:\\nA: {o1}\\nB: {o2}"``, images first.
``spatial_doc_to_text_image`` looks for the post-prompt under a ``default`` key of the already
resolved model kwargs, finds none and appends nothing; the yaml's post-prompt ("Give me the answer
letter directly. The best answer is:") is the named variant ``post_prompt``. ``<image>``
placeholders inside a question are removed (the harness interleaves images there).

Video config (card ``sitebench_video``, ``site_video.yaml``): ``visual[0]`` is the video (under
``--video-root``, default ``$HF_HOME/sitebench``), the prompt is ``sitebench_video_prompt``'s:
"Select the best answer to the following multiple-choice question based on the video. Respond with
only the letter of the correct option.\nQuestion: {q}\nOptions:\nA: ..\nGive me the answer letter
directly. The best answer is:"; frames are sampled by the runner (the card's ``frames``).

Parser ``site_mmmu``: MMMU's ``parse_multi_choice_response`` (``(A)``, then `` A ``, then ``A.``,
then ``A:``; the last-occurring candidate when several), and when nothing matches a uniform random
option, as the official code does; ours is seeded by the sample id, so a rerun gives the same
score. ``site_mmmu_strict`` (not official) scores such replies as no answer.

Metric: chance-adjusted accuracy (CAA): ``sum_i (acc_i - 1/n_i) / sum_i (1 - 1/n_i)``, x100, over
all questions (``overall``) and per category (``tasks``); plain accuracy is ``overall_micro``. CAA
needs each row's option count: the aggregation reads the ``n_options`` column of the scores table.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

from gaspprobe.benchmarking.card import BenchmarkCard, Sample
from gaspprobe.benchmarking.formats import common as C

FIELDS = ("question", "options", "answer", "category", "dataset", "visual")


def parse_multi_choice(response: str, letters: Sequence[str]) -> str | None:
    """MMMU ``parse_multi_choice_response`` without its random fallback (None instead)."""
    r = " " + str(response) + " "
    cands = [c for c in letters if f"({c})" in r]
    if not cands:
        cands = [c for c in letters if f" {c} " in r]
    if not cands:
        cands = [c for c in letters if f"{c}." in r]
    if not cands:
        cands = [c for c in letters if f"{c}:" in r or f":{c}" in r or f": {c}" in r]
    if not cands:
        return None
    if len(cands) == 1:
        return cands[0]
    starts = [r.rfind(f" {c} ") for c in cands]  # the last one found (ties: the first candidate)
    return cands[max(range(len(cands)), key=lambda k: (starts[k], -k))]


def site_mmmu(raw: str, sample: Sample) -> str | None:
    """Official SITE parsing: :func:`parse_multi_choice`, else a random option seeded by the id."""
    letters = sorted(sample.options or {})
    if not letters:  # not a multiple-choice sample: nothing to choose from
        return None
    got = parse_multi_choice(str(raw).strip(), letters)
    return got if got is not None else random.Random(f"site:{sample.id}").choice(letters)


def site_mmmu_strict(raw: str, sample: Sample) -> str | None:
    """NOT official: :func:`parse_multi_choice` with no random fallback (unparsed = no answer)."""
    return parse_multi_choice(str(raw).strip(), sorted(sample.options))


def chance_adjusted(scores: Sequence[float], n_options: Sequence[int]) -> float:
    """CAA in [-1/(n-1), 1]: ``sum(s - 1/n) / sum(1 - 1/n)`` (SITE ``spatial_aggregate_results``
    on ``chance_adjusted_acc``); NaN for no rows."""
    num = sum(float(s) - 1.0 / n for s, n in zip(scores, n_options))
    den = sum(1.0 - 1.0 / n for n in n_options)
    return num / den if den else float("nan")


def site_caa(df) -> dict:
    """SITE aggregation: CAA x100 overall and per task (needs ``n_options``); accuracy as
    ``overall_micro``. Without an ``n_options`` column, ``overall`` and ``tasks`` are NaN."""
    out = C.micro_by_task(df)
    acc_tasks = out["tasks"]
    out["overall_micro"] = out["overall"]
    out["extra"] = {"accuracy_tasks": acc_tasks}
    if "n_options" not in df.columns or df["n_options"].isna().any():
        out["overall"] = float("nan")
        out["tasks"] = {t: float("nan") for t in acc_tasks}
        out["extra"]["note"] = "chance-adjusted accuracy needs the n_options column"
        return out
    out["overall"] = 100.0 * chance_adjusted(df["score"].tolist(), df["n_options"].astype(int).tolist())
    out["tasks"] = {str(t): 100.0 * chance_adjusted(g["score"].tolist(), g["n_options"].astype(int).tolist())
                    for t, g in df.groupby("task", sort=True)}
    return out


VIDEO_PRE = ("Select the best answer to the following multiple-choice question based on the video. Respond with "
             "only the letter of the correct option.")


def build_video_prompt(question: str, options: list[str], variant: dict) -> str:
    """``sitebench_video_prompt``: fixed pre-prompt, ``Question: ..``, ``Options:`` lines ``A: ..``,
    then the post-prompt (found by ``_get_specific_kwarg``, so sent here)."""
    opts = "\n".join(f"{C.LETTERS[k]}: {o}" for k, o in enumerate(options))
    post = variant.get("post_prompt", "Give me the answer letter directly. The best answer is:")
    return f"{variant.get('pre_prompt') or VIDEO_PRE}\nQuestion: {question.strip()}\nOptions:\n{opts}\n{post}"


def build_prompt(question: str, options: list[str], variant: dict) -> str:
    q = question.replace("<image>", " ").strip()
    opts = "\n".join(f"{C.LETTERS[k]}: {o}" for k, o in enumerate(options))
    text = variant.get("pre_prompt", "") + f"Question: {q}\nOptions:\n{opts}"
    post = variant.get("post_prompt", "")
    return text + ("\n" + post if post else "")


def default_image_root(data: Any, card: BenchmarkCard, folder: Path | None) -> Path | None:
    """Hub data: the lmms-eval cache ``$HF_HOME/sitebench``; a local file: its folder."""
    if C.is_hub(data, card):
        import os

        return Path(os.path.expanduser(os.environ.get("HF_HOME", "~/.cache/huggingface/"))) / "sitebench"
    return folder


def load_samples(card: BenchmarkCard, data: str | Path, *, video_root: str | Path | None = None,
                 image_root: str | Path | None = None, prompt_variant: str | None = None) -> list[Sample]:
    rows, where, folder = C.read_rows(data, card)
    video = card.dataset.config == "video_test"
    given = video_root if video else image_root
    root = Path(given) if given is not None else default_image_root(data, card, folder)
    variant = card.variant(prompt_variant)
    samples: list[Sample] = []
    for i, row, rid, sid in C.keyed_rows(rows, where, FIELDS, "SITE", "id", "optional"):
        cat = C.text(row, "category", where, i, rid)
        if cat not in card.question_types:
            raise C.row_error(where, i, rid, "category", f"unknown category {cat!r}")
        question = C.text(row, "question", where, i, rid)
        options = C.str_list(row, "options", where, i, rid)
        C.check_count(options, range(2, 27), "options", where, i, rid)
        ans = C.text(row, "answer", where, i, rid).strip()
        if ans not in C.LETTERS[: len(options)]:
            raise C.row_error(where, i, rid, "answer", f"{ans!r} is not one of {', '.join(C.LETTERS[:len(options)])}")
        paths = C.image_list(row["visual"], where, i, rid, "visual", root)
        doc: dict[str, Any] = {k: row[k] for k in FIELDS} | ({"id": rid} if rid is not None else {})
        if video:  # spatial_doc_to_visual_video: the first path is the video
            prompt, visual, cluster = build_video_prompt(question, options, variant), {"video": paths[0]}, paths[0]
        else:
            prompt, visual, cluster = build_prompt(question, options, variant), {"images": paths}, sid
        samples.append(Sample(
            id=sid, question_type=cat, kind="mca", prompt=prompt, target=ans,
            task=card.tasks.get(cat, cat), options={C.LETTERS[j]: o for j, o in enumerate(options)},
            visual=visual, cluster=cluster, doc=doc))
    return C.some(samples, where)
