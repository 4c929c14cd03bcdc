"""Answer extraction: raw model text -> an option letter, a number, or no answer (``None``).

Every parser is a plain function ``parser(raw: str, sample: Sample) -> str | float | None`` and is
registered by name in :data:`gaspprobe.benchmarking.registry.PARSERS`; cards name their parser,
nothing is ever ``eval``'d. Parsers never raise: anything they cannot read is "no answer", which
scores 0 (the official worst case).

Provenance (read, not copied):

- ``vsibench_first_token`` (VSI-Bench default, official): ``vision-x-nyu/thinking-in-space``,
  ``lmms_eval/tasks/vsibench/utils.py``: ``fuzzy_matching`` (split on single spaces, first piece,
  trailing ``.`` stripped, then whitespace stripped), ``exact_match`` (case-insensitive equality
  with the letter) and ``to_float`` (Python ``float()``; failure -> worst case 0).
- ``lmms_eval_lenient`` (NOT official; a named option): the later lmms-eval change (commit
  eab6655a, 2026-07) that reads the first number in the text, as digits or English number words.
  We could not read that code here; this is a re-implementation from its description and MCA is
  unchanged (first token), as in lmms-eval.
- ``vlmevalkit_can_infer`` (All-Angles default): ``Chenyu-Wang567/All-Angles-Bench`` VLMEvalKit
  fork, ``vlmeval/utils/matching_util.py``: ``can_infer_option`` then ``can_infer_text``
  (the fork's version; later upstream VLMEvalKit added extra guards that we do not apply).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from gaspprobe.benchmarking.card import Sample


# --------------------------------------------------------------------------- VSI-Bench official
def vsi_first_token(raw: str) -> str:
    """Official ``fuzzy_matching``: first piece of ``raw.split(' ')``, trailing '.' then spaces stripped.

    >>> vsi_first_token("A. chair"), vsi_first_token("3 meters"), vsi_first_token(" A")
    ('A', '3', '')
    """
    return str(raw).split(" ")[0].rstrip(".").strip()


def _finite_float(token: str) -> float | None:
    """``float(token)`` as the official ``to_float`` does; NaN/inf (which score 0 officially) -> None."""
    try:
        x = float(token)
    except (ValueError, TypeError, OverflowError):
        return None
    return x if math.isfinite(x) else None


def _letter(token: str, letters: "set[str] | Mapping[str, str]") -> str | None:
    """The option letter ``token`` names under a case-insensitive exact match, else None."""
    up = token.upper()
    return up if up in letters else None


def vsibench_first_token(raw: str, sample: "Sample") -> "str | float | None":
    """VSI-Bench official parsing (the default for ``vsibench`` cards).

    MCA: the first token compared case-insensitively with the option letters (``"A"``, ``"a"``,
    ``"A."`` -> ``"A"``; ``"(A)"``, ``"The answer is A"`` or a leading space -> no answer).
    NA: ``float()`` of the first token (``"3 meters"`` -> 3.0, ``"three"`` -> no answer). A float
    that is NaN or infinite (``"nan"``, ``"1e309"``) scores 0 in the official MRA, so it is
    reported as no answer; the score is identical.
    """
    token = vsi_first_token(raw)
    if sample.kind == "mca":
        return _letter(token, sample.options)
    return _finite_float(token)


# --------------------------------------------------------------------------- lenient numbers
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"hundred": 100, "thousand": 1000}
_NUM_RE = re.compile(r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_WORD_RE = re.compile(r"[a-z]+")


def _words_value(words: list[str]) -> float | None:
    """Value of a run of English number words ("twenty", "one", "hundred" ...), or None."""
    total, current, seen = 0, 0, False
    for w in words:
        if w in _UNITS:
            current += _UNITS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w in _SCALES:
            current = max(current, 1) * _SCALES[w]
            if _SCALES[w] >= 1000:
                total, current = total + current, 0
        elif w == "and" and seen:
            continue
        else:
            break
        seen = True
    if not seen:
        return None
    try:
        return float(total + current)
    except OverflowError:  # "one hundred hundred ..." beyond float range: no usable number
        return None


def first_number(text: str) -> float | None:
    """The first number in ``text``, written in digits ("3", "2.5", "1,200", "1e3") or in English
    number words ("three", "twenty-one", "one hundred and five"), whichever comes first; a
    non-finite value ("1e309") or no number at all -> None."""
    text = str(text)
    m = _NUM_RE.search(text)
    digit_pos = m.start() if m else len(text) + 1
    low = text.lower()
    for wm in _WORD_RE.finditer(low[:digit_pos]):
        w = wm.group(0)
        if w in _UNITS or w in _TENS or w in _SCALES:
            rest = re.split(r"[\s\-]+", low[wm.start():])
            words = [re.sub(r"[^a-z]", "", t) for t in rest]
            val = _words_value(words)
            if val is not None:
                return val
    if m:
        val = _finite_float(m.group(0).replace(",", ""))
        return val
    return None


def lmms_eval_lenient(raw: str, sample: "Sample") -> "str | float | None":
    """NOT the official VSI-Bench parser: lmms-eval's later lenient NA extraction (first number in
    the text, digits or number words: "There are 3 boxes" -> 3, "three" -> 3). MCA is unchanged
    (official first token)."""
    if sample.kind == "mca":
        return vsibench_first_token(raw, sample)
    return first_number(raw)


# --------------------------------------------------------------------------- VLMEvalKit can_infer
_VLMEVAL_PUNCT = ".()[],:;!*#{}"
_VLMEVAL_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)


def can_infer_option(answer: str, choices: Mapping[str, str]) -> str | None:
    """VLMEvalKit ``can_infer_option``: punctuation ``.()[],:;!*#{}`` -> spaces, split on whitespace;
    exactly one option letter present as a token (case-sensitive) -> that letter; no letter but a
    ``Z`` token -> ``"Z"`` (explicitly unanswerable); a known refusal -> ``"Z"``; else None."""
    if "Failed to obtain answer via API" in answer:
        return None
    if any(r in answer for r in _VLMEVAL_REFUSALS):
        return "Z"
    mod = answer
    for c in _VLMEVAL_PUNCT:
        mod = mod.replace(c, " ")
    splits = [x.strip() for x in mod.split()]
    present = [c for c in choices if c in splits]
    if len(present) == 1:
        return present[0]
    if not present and "Z" in splits:
        return "Z"
    return None


def can_infer_text(answer: str, choices: Mapping[str, str]) -> str | None:
    """VLMEvalKit ``can_infer_text``: exactly one option's text is a (case-insensitive) substring."""
    low = answer.lower()
    cands = [k for k, v in choices.items() if str(v).lower() in low]
    return cands[0] if len(cands) == 1 else None


def can_infer(answer: str, choices: Mapping[str, str]) -> str | None:
    """VLMEvalKit ``can_infer``: option letter first, then option text; ``"Z"``/None = unanswered."""
    answer = str(answer)
    return can_infer_option(answer, choices) or can_infer_text(answer, choices)


def vlmevalkit_can_infer(raw: str, sample: "Sample") -> "str | float | None":
    """All-Angles Bench released-code parsing (rule matching, no LLM judge): an option letter or
    None. ``"Z"`` (unanswerable) is reported as None; it is scored wrong either way."""
    out = can_infer(raw, sample.options)
    return out if out in sample.options else None


def vlmevalkit_then_first_token(raw: str, sample: "Sample") -> "str | float | None":
    """Convenience for VSI-format data parsed with VLMEvalKit rules: MCA via ``can_infer``, NA via
    the official first-token ``float()``. Not used by any official card."""
    if sample.kind == "mca":
        return vlmevalkit_can_infer(raw, sample)
    return vsibench_first_token(raw, sample)


def format_parsed(parsed: "str | float | None") -> str | None:
    """The ``parsed`` column of the scores table: a string, or None for no answer."""
    if parsed is None:
        return None
    if isinstance(parsed, float):
        return repr(parsed)
    return str(parsed)
