"""SPAR-Bench-Tiny (Zhang et al., SPAR, arXiv 2503.22976): 1,000 single- and multi-view spatial
questions in 20 tasks: multiple choice, numbers (depth / distance) and one free-form task (view
change inference), scored as lmms-eval scores them.

Source followed (read, not copied): lmms-eval ``lmms_eval/tasks/sparbench/`` at 75571cfe
(``sparbench_tiny.yaml``, itself from ``LogosRoboticsGroup/SPAR`` ``lmms-eval/.../sparbench_tiny.yaml``:
``jasonzhango/SPAR-Bench-Tiny`` split ``test``; ``_default_template_yaml``: greedy,
max_new_tokens 100, the post-prompts; ``utils.py``: ``MCA_QUESTION_TYPES``,
``NA_QUESTION_TYPES``, ``sparbench_doc_to_text``, ``exact_match``, ``process_na``,
``mean_relative_accuracy``, ``abs_dist_norm``, ``compute_vci_metric``, ``_compute_all_subscores``).

Schema (the dataset card's ``dataset_info``, checked): ``id`` int64, ``img_type`` str,
``format_type`` str, ``task`` str (20 tasks), ``source`` str, ``image`` list of Image, ``question`` str
(options inside the text for multiple choice), ``answer`` str (a letter, a number, or for
``view_change_infer`` an instruction like ``"move_right:0.5,rotate_left:30"``).

Prompt: ``pre + "\\n" + question + "\\n" + post``; multiple choice: ``pre + "\\n" + question + "\\n"
+ note + "\\n" + "Answer with the option's letter from the given choices directly."`` where ``note``
explains the 0-1000 box coordinates for position_matching / camera_motion_infer and is empty
otherwise; view_change_infer: ``pre + "\\n" + question + "\\n\\n"``.

Scoring (parser ``spar_lmms_eval``, metrics ``accuracy`` / ``spar_number_or_vci``, aggregation
``spar_macro``):

- multiple choice: lmms-eval's ``exact_match`` on the whole reply, lower-cased: equal, or the reply
  is a substring of the answer, or its first character is the answer. Faithful quirk: an *empty*
  reply is a substring of every answer and scores 1; ``spar_strict`` (not official) scores it 0.
- numbers: the first number in the reply (the last one for the four ``*_mv`` tasks, -1 when there
  is none), then MRA over 0.50..0.95 with ``|pred - gt| / gt`` (``|pred - gt|`` when gt is 0).
- view_change_infer: VCI, the mean over five signed motion axes of an MRA whose arguments lmms-eval
  passes swapped (``|gt - pred| / pred``); kept; an unreadable reply scores 0.
- overall: the unweighted mean of the task means (x100); ``extra`` holds lmms-eval's low / middle /
  high level means.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from gaspprobe.benchmarking.card import BenchmarkCard, Sample
from gaspprobe.benchmarking.formats import common as C
from gaspprobe.benchmarking.metrics import MRA_THRESHOLDS

FIELDS = ("id", "img_type", "format_type", "task", "source", "image", "question", "answer")
MCA_TASKS = ("obj_spatial_relation_oo", "obj_spatial_relation_oc_mv", "obj_spatial_relation_oo_mv",
             "spatial_imagination_oc", "spatial_imagination_oo", "spatial_imagination_oc_mv",
             "spatial_imagination_oo_mv", "position_matching", "camera_motion_infer", "distance_infer_center_oo",
             "distance_infer_center_oo_mv")
NA_TASKS = ("depth_prediction_oc", "depth_prediction_oo", "distance_prediction_oc", "distance_prediction_oo",
            "depth_prediction_oc_mv", "depth_prediction_oo_mv", "distance_prediction_oo_mv",
            "distance_prediction_oc_mv")
VCI_TASK = "view_change_infer"
LAST_NUMBER_TASKS = ("depth_prediction_oc_mv", "depth_prediction_oo_mv", "distance_prediction_oc_mv",
                     "distance_prediction_oo_mv")
LEVELS = {"low": NA_TASKS, "middle": (VCI_TASK, "position_matching", "camera_motion_infer"),
          "high": tuple(t for t in MCA_TASKS if t not in ("position_matching", "camera_motion_infer"))}
BOX_NOTE = ("The values represent the bounding box coordinates normalized to a 0-1000 scale, with the top-left "
            "corner as the origin of the image.")
_NUM = re.compile(r"(?<!\^)\d+\.\d+|(?<!\^)\d+")
_OPT = re.compile(r"^\s*([A-F])[\.\):]\s*(.*)$", flags=re.MULTILINE)
_VCI_ORDER = (("move_right", "move_left"), ("move_up", "move_down"), ("move_forward", "move_backward"),
              ("rotate_right", "rotate_left"), ("rotate_up", "rotate_down"))


# --------------------------------------------------------------------------- scoring rules
def exact_match(pred: str, target: str) -> bool:
    """lmms-eval ``exact_match``: lower-cased equality, reply inside the answer, or first character."""
    p, t = str(pred).lower(), str(target).lower()
    return p == t or p in t or (len(p) > 0 and p[0] == t)


def process_na(pred: str, task: str) -> float | None:
    """lmms-eval ``process_na``: unsigned numbers in the reply; the first, or for the ``*_mv`` tasks
    the last (-1 when none); None when a single-view reply has no number (lmms-eval: worst case)."""
    nums = [float(x) for x in _NUM.findall(str(pred))]
    if task in LAST_NUMBER_TASKS:
        return nums[-1] if nums else -1.0
    return nums[0] if nums else None


def mra_abs(pred: float, target: float) -> float:
    """SPAR's MRA: mean over thresholds 0.50..0.95 of ``abs_dist_norm(pred, target) <= 1 - theta``,
    ``abs_dist_norm`` = ``|pred - target| / target``, or ``|pred - target|`` when target is 0."""
    d = abs(pred - target) if target == 0 else abs((pred - target) / target)
    return float(np.mean(d <= 1 - MRA_THRESHOLDS))


def _instruction(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in (item.split(":") for item in str(text).split(","))}


def vci(pred: str, answer: str) -> float:
    """lmms-eval ``compute_vci_metric``: per motion axis the signed amount (right - left, ...), then
    ``mra_abs(gt, pred)`` (arguments as lmms-eval passes them), averaged; unreadable -> 0."""
    try:
        p, g = _instruction(pred), _instruction(answer)
        scores = [mra_abs(g.get(a, 0) - g.get(b, 0), p.get(a, 0) - p.get(b, 0)) for a, b in _VCI_ORDER]
    except (ValueError, TypeError, ZeroDivisionError):
        return 0.0
    return float(np.mean(scores))


def _letter(raw: str, sample: Sample) -> str | None:
    """A letter to record for a non-matching multiple-choice reply (never the target)."""
    t = str(raw).strip()[:1].upper()
    return t if t in sample.options and t != sample.target.upper() else None


def spar_lmms_eval(raw: str, sample: Sample) -> str | float | None:
    """Parser of the ``sparbench_tiny`` card: for multiple choice the target letter when lmms-eval's
    :func:`exact_match` accepts the reply (else a wrong letter or None); for numbers
    :func:`process_na`; for view_change_infer the reply text (scored by :func:`vci`)."""
    task = sample.question_type
    if sample.kind == "mca":
        return sample.target if exact_match(raw, sample.target) else _letter(raw, sample)
    if task == VCI_TASK:
        return str(raw) if str(raw).strip() else None
    return process_na(raw, task)


def spar_strict(raw: str, sample: Sample) -> str | float | None:
    """NOT official: as :func:`spar_lmms_eval` but an empty reply is no answer."""
    if not str(raw).strip():
        return None
    return spar_lmms_eval(raw, sample)


def spar_number_or_vci(parsed: Any, target: str) -> float:
    """Per-sample score of non-multiple-choice SPAR questions: :func:`mra_abs` for a numeric target,
    :func:`vci` for a view-change instruction; no answer -> 0."""
    if parsed is None:
        return 0.0
    try:
        t = float(target)
    except ValueError:
        return vci(str(parsed), target)
    if isinstance(parsed, str):
        return 0.0
    p = float(parsed)
    return mra_abs(p, t) if math.isfinite(p) else 0.0


def spar_macro(df) -> dict:
    """``_compute_all_subscores``: mean per task, overall = unweighted mean of the task means (x100);
    ``extra``: the low / middle / high means of the task means present."""
    tasks = {str(t): 100.0 * float(g["score"].mean()) for t, g in df.groupby("question_type", sort=True)}
    levels = {}
    for lvl, names in LEVELS.items():
        vals = [v for t, v in tasks.items() if t in names]
        levels[lvl] = sum(vals) / len(vals) if vals else float("nan")
    return {
        "overall": sum(tasks.values()) / len(tasks) if tasks else float("nan"),
        "overall_micro": 100.0 * float(df["score"].mean()) if len(df) else float("nan"),
        "tasks": tasks, "question_types": tasks,
        "n_per_task": {str(t): int(len(g)) for t, g in df.groupby("question_type", sort=True)},
        "extra": {"levels": levels},
    }


# --------------------------------------------------------------------------- loading
def parse_options(question: str) -> dict[str, str]:
    """Options written as ``A. x`` / ``A) x`` / ``A: x`` lines; letters from A in order, else {}."""
    found = {m.group(1): m.group(2).strip() for m in _OPT.finditer(question)}
    return found if list(found) == list("ABCDEF")[: len(found)] and len(found) >= 2 else {}


def build_prompt(question: str, task: str, variant: dict) -> str:
    pre = variant.get("pre_prompt", "")
    if task in NA_TASKS:
        post = variant.get("na_post_prompt") or "Please answer the question using a single word or phrase."
        return pre + "\n" + question + "\n" + post
    if task in MCA_TASKS:
        note = BOX_NOTE if task in ("position_matching", "camera_motion_infer") else ""
        post = variant.get("mca_post_prompt") or "Answer with the option's letter from the given choices directly."
        return pre + "\n" + question + "\n" + note + "\n" + post
    return pre + "\n" + question + "\n" + "" + "\n" + ""


def load_samples(card: BenchmarkCard, data: str | Path, *, video_root: str | Path | None = None,
                 image_root: str | Path | None = None, prompt_variant: str | None = None) -> list[Sample]:
    rows, where, root, variant = C.open_rows(data, card, image_root, prompt_variant)
    samples: list[Sample] = []
    for i, row, rid, sid in C.keyed_rows(rows, where, FIELDS, "SPAR-Bench", "id", "int"):
        task = C.text(row, "task", where, i, rid)
        if task not in MCA_TASKS + NA_TASKS + (VCI_TASK,):
            raise C.row_error(where, i, rid, "task", f"unknown task {task!r}")
        question = C.text(row, "question", where, i, rid)
        ans = C.text(row, "answer", where, i, rid).strip()
        options: dict[str, str] = {}
        if task in MCA_TASKS:
            kind = "mca"
            options = parse_options(question) or {k: "" for k in "ABCD"}
            if ans.upper() not in options:
                raise C.row_error(where, i, rid, "answer", f"{ans!r} is not one of {', '.join(options)}")
            ans = ans.upper()
        else:
            kind = "na"
            if task in NA_TASKS:
                try:
                    y = float(ans)
                except ValueError:
                    raise C.row_error(where, i, rid, "answer", f"{ans!r} is not a number") from None
                if not math.isfinite(y):
                    raise C.row_error(where, i, rid, "answer", f"{ans!r} is not a finite number")
            else:
                try:
                    _instruction(ans)
                except ValueError:
                    raise C.row_error(where, i, rid, "answer", f"{ans!r} is not a 'move_x:v,...' instruction") \
                        from None
        images = C.image_list(row["image"], where, i, rid, "image", root)
        doc: dict[str, Any] = {k: row[k] for k in FIELDS if k != "image"}
        samples.append(Sample(
            id=sid, question_type=task, kind=kind, prompt=build_prompt(question, task, variant), target=ans,
            task=card.tasks.get(task, task), options=options, visual={"images": images}, cluster=sid, doc=doc))
    return C.some(samples, where)
