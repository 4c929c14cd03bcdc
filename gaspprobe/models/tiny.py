"""Tiny offline VLMs: random init from config objects, a locally built tokenizer, the real processors.

No weights can be downloaded here, so every architecture is exercised on a *tiny* randomly
initialised model of the real transformers class (few layers, small widths), saved with
``save_pretrained`` so that downloaded-checkpoint code paths load it unchanged. Each family module
(``qwen_vl.py``, ``llava.py``, ...) provides ``build_tiny_parts(seed) -> (model, processor)``; this
module owns what they share: the byte-level BPE tokenizer with the family's special tokens, and
:func:`build_tiny`, which saves everything plus ``gaspprobe_model.json`` (the processor class to
load with, since ``AutoProcessor`` cannot reload the image-only processor subclasses).

The processors' sizes are chosen so that a 448x448 frame gives a small token grid (8x8 for every
family) and probing/training run in seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from gaspprobe.errors import ModelError

#: Written beside a tiny model: ``{"processor_class": "module:Name", "arch": ..., "seed": ...}``.
META_FILE = "gaspprobe_model.json"

# A few strings so that BPE learns merges for ordinary text (the chat templates, prompts and the
# answers the benchmarks parse); byte-level, so any text still encodes without UNK.
_CORPUS = [
    "user assistant system You are a helpful assistant.",
    "Describe the scene. How many chairs are in the room? What is the distance in metres?",
    "Answer with the option's letter from the given choices directly. A. B. C. D.",
    "Which object is closer to the camera, the table or the sofa? left right front behind",
    "0 1 2 3 4 5 6 7 8 9 10 yes no the a of to in is on with image frame view",
]


def make_tokenizer(special_tokens: Sequence[str], *, eos: str, pad: str,
                   named: dict[str, str] | None = None, bos: str | None = None):
    """A byte-level BPE ``PreTrainedTokenizerFast`` (vocab ~400) with ``special_tokens`` added.

    Args:
        special_tokens: every control/image/video token string of the family (each one id).
        eos, pad, bos: which of them are the EOS / PAD / BOS tokens.
        named: extra named special tokens, e.g. ``{"image_token": "<image>"}``, which become
            ``tok.image_token`` / ``tok.image_token_id`` (transformers 5.x ``extra_special_tokens``).
    Returns:
        the tokenizer (left padding, so batched generation works).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tk.train_from_iterator(_CORPUS, trainer=trainer)
    kw = {"eos_token": eos, "pad_token": pad}
    if bos is not None:
        kw["bos_token"] = bos
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, extra_special_tokens=dict(named or {}), **kw)
    others = [t for t in special_tokens if t not in {eos, pad, bos, *(named or {}).values()}]
    if others:
        tok.add_special_tokens({"extra_special_tokens": others}, replace_extra_special_tokens=False)
    tok.padding_side = "left"
    return tok


def build_tiny(arch: str, out: str | Path, seed: int = 0, *, force: bool = False) -> Path:
    """Build a tiny random model of family ``arch`` (a ``model_type``, see ``gaspprobe model list``)
    and save model + processor + ``gaspprobe_model.json`` to ``out``; returns ``out``.

    ``out`` is a run folder of kind ``"model"`` (:func:`gaspprobe.runs.open_run`, staged): the
    files are written into a temp folder and swapped in with the manifest last, so a killed build
    never leaves a folder that loads; the same ``arch`` and ``seed`` again return the finished
    folder untouched; another ``arch``/``seed`` in the same folder is refused (one line naming
    the keys) unless ``force``. The result loads with :func:`gaspprobe.models.load` exactly as a
    hub checkpoint would. Same ``arch`` and ``seed`` give bit-identical weights.
    """
    import torch

    from gaspprobe.io import atomic_write_json
    from gaspprobe.models.registry import adapter_class
    from gaspprobe.runs import open_run

    cls = adapter_class(arch)
    if getattr(cls, "build_tiny_parts", None) is None:  # pragma: no cover - every family has one
        raise ModelError(f"model family {arch!r} has no tiny builder")
    out = Path(out)
    with open_run(out, "model", {"arch": arch, "seed": int(seed)}, publish="staged", seed=int(seed),
                  force=force) as run:
        if run.cached:
            return out
        torch.manual_seed(seed)
        model, processor = cls.build_tiny_parts(seed)
        model.save_pretrained(run.dir)
        processor.save_pretrained(run.dir)
        pcls = type(processor)
        n_params = int(sum(p.numel() for p in model.parameters()))
        atomic_write_json(run.dir / META_FILE, {
            "arch": arch,
            "seed": int(seed),
            "processor_class": f"{pcls.__module__}:{pcls.__name__}",
            "num_parameters": n_params,
        })
        run.complete(model_type=arch, num_parameters=n_params, processor_class=f"{pcls.__module__}:{pcls.__name__}")
    return out


def read_meta(path: Path) -> dict | None:
    """The ``gaspprobe_model.json`` of a local model folder, or None."""
    p = Path(path) / META_FILE
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"unreadable ({e})", path=p) from None
