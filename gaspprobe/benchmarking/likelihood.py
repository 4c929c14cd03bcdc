"""A NON-OFFICIAL likelihood scorer for multiple choice (lm-evaluation-harness style).

No benchmark here is officially scored this way: the official protocols generate text and parse
it. Tiny random models never produce a parseable answer, so under the official scorer every
multiple-choice task reads 0 for base and GASP alike; this scorer gives them a number. The model
"answers" the option letter whose tokens it finds most likely after the prompt (the chat template
with the generation prompt, the prompt asking for "the option's letter"): the summed log-probability
of the continuation tokens, as lm-evaluation-harness's ``multiple_choice`` ``acc`` (letters are
one or two tokens, so its length-normalised ``acc_norm`` is not needed). Numerical questions keep
the official generation. Every summary of such a run says ``scorer: "likelihood"`` and
``official: false``; reports must label it so.
"""

from __future__ import annotations

from typing import Any, Sequence

NAME = "likelihood"
LABEL = "likelihood (non-official, lm-eval-harness style)"


def continuation_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each continuation, without special tokens (one-line error when one is empty)."""
    from gaspprobe.errors import ModelError

    out = []
    for t in texts:
        ids = list(tokenizer(t, add_special_tokens=False)["input_ids"])
        if not ids:
            raise ModelError(f"likelihood scorer: option {t!r} tokenizes to nothing")
        out.append(ids)
    return out


def option_logprobs(model: Any, inputs: Any, conts: Sequence[Sequence[int]]) -> list[float]:
    """Summed log-probabilities of each continuation after the prompt ``inputs`` (batch of one row).

    When every continuation is one token, one forward pass of the prompt gives them all; otherwise
    each continuation is appended and run (the visual inputs are reused as they are)."""
    import torch

    ids = inputs["input_ids"]
    if ids.shape[0] != 1:
        raise ValueError("option_logprobs: one prompt at a time")
    with torch.inference_mode():
        if all(len(c) == 1 for c in conts):
            logits = model(**inputs).logits[0, -1].float()
            lp = torch.log_softmax(logits, -1)
            return [float(lp[c[0]]) for c in conts]
        out = []
        for c in conts:
            ext = extend(inputs, c)
            logits = model(**ext).logits[0].float()
            lp = torch.log_softmax(logits[ids.shape[1] - 1: -1], -1)  # predicts the continuation tokens
            out.append(float(lp[torch.arange(len(c)), torch.tensor(list(c))].sum()))
        return out


def extend(inputs: Any, cont: Sequence[int]) -> dict:
    """``inputs`` with the text tokens ``cont`` appended: ``input_ids`` gets them, every other
    per-token tensor [1, L] a matching tail (``attention_mask`` ones; token-type ids such as Qwen's
    ``mm_token_type_ids`` zeros = text)."""
    import torch

    ids = inputs["input_ids"]
    cid = torch.tensor([list(cont)], dtype=ids.dtype, device=ids.device)
    ext = dict(inputs)
    for k, v in inputs.items():
        if k == "input_ids" or not isinstance(v, torch.Tensor) or tuple(v.shape[:2]) != tuple(ids.shape):
            continue
        fill = torch.ones if k == "attention_mask" else torch.zeros
        ext[k] = torch.cat([v, fill((1, len(cont)) + tuple(v.shape[2:]), dtype=v.dtype, device=v.device)], 1)
    ext["input_ids"] = torch.cat([ids, cid], 1)
    return ext


def pick(options: dict[str, str], logprobs: Sequence[float]) -> str:
    """The letter with the highest log-probability (ties: the first letter)."""
    letters = sorted(options)
    best = max(range(len(letters)), key=lambda i: (logprobs[i], -i))
    return letters[best]
