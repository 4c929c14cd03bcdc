"""All-Angles Bench: loading ``data.json``, the released-code prompt, and the view images.

Official source reproduced: ``Chenyu-Wang567/All-Angles-Bench``, its VLMEvalKit fork
``vlmeval/dataset/image_mcq.py`` ``ImageMCQDataset.build_prompt``: one image message per entry of
``image_path`` (in order), then ``Question: {question}\\nOptions:\\nA. {A}\\nB. {B}\\nC. {C}\\n`` and
the post-prompt ``Please select the correct answer from the options above. \\n``; trailing
whitespace is stripped (as the Qwen2-VL custom prompt does). The paper's post-prompt ("Answer with
the option's letter from the given choices directly.") is the named variant ``paper``.

The field names come from third-party loaders and the paper's appendix, so the loader fails loudly
(one-line :class:`DataError` naming the record and field) on any mismatch instead of guessing:
``index``, ``folder``, ``category``, ``pair_idx`` (null when unpaired), ``sourced_dataset``,
``image_path`` (list of paths relative to ``--image-root``), ``question``, ``A``, ``B``, ``C``,
``answer`` (a letter). ``data.json`` is the HF repo's root file (``ch-chenyu/All-Angles-Bench``;
``datasets.load_dataset`` returns only the image folder, so we fetch it with ``huggingface_hub``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gaspprobe.benchmarking.card import BenchmarkCard, Sample, invalid_sample, row_error
from gaspprobe.errors import DataError

FIELDS = ("index", "folder", "category", "pair_idx", "sourced_dataset", "image_path", "question",
          "A", "B", "C", "answer")
LETTERS = ("A", "B", "C")


def build_prompt(doc: dict, variant: dict) -> str:
    """``Question: ...\\nOptions:\\nA. ...\\nB. ...\\nC. ...\\n<post>``, trailing whitespace stripped.
    Options that are null are left out, as ``build_prompt`` does for NaN cells."""
    post = variant.get("post_prompt", "Please select the correct answer from the options above.")
    text = f"Question: {doc['question']}\n"
    opts = [(k, doc[k]) for k in LETTERS if doc.get(k) is not None]
    if opts:
        text += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in opts)
        text += post + " \n"
    return text.rstrip()


def read_records(data: str | Path, card: BenchmarkCard) -> tuple[list[dict], Path]:
    """Read the question records; ``data`` is ``data.json``, its folder, or ``"hf"`` (downloads
    ``data.json`` from the card's HF repo with ``huggingface_hub.hf_hub_download``)."""
    ds = card.dataset
    if str(data) in ("hf", ds.hf_id or "\0"):
        if not ds.hf_id:
            raise DataError(f"benchmark {card.name} has no Hugging Face dataset; pass a local --data")
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(ds.hf_id, ds.data_file or "data.json", repo_type="dataset",
                                    revision=ds.revision))
    else:
        path = Path(data)
        if path.is_dir():
            path = path / (ds.data_file or "data.json")
    if not path.is_file():
        raise DataError("question file not found", path=path)
    try:
        recs = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"not valid JSON ({e})", path=path) from None
    if not isinstance(recs, list):
        raise DataError(f"expected a JSON list of questions, got {type(recs).__name__}", path=path)
    return recs, path


def _sample(r: Any, i: int, sid: str, card: BenchmarkCard, variant: dict, root: Path, path: Path) -> Sample:
    """One validated record (DataError naming the record and the field otherwise)."""
    if not isinstance(r, dict):
        raise DataError(f"record {i}: expected an object, got {type(r).__name__}", path=path)
    missing = [f for f in FIELDS if f not in r]
    if missing:
        raise DataError(f"record {i}: missing field(s) {', '.join(missing)} "
                        f"(All-Angles schema: {', '.join(FIELDS)})", path=path)
    cat = r["category"]
    if not isinstance(cat, str):
        raise DataError(f"index {sid}: category: expected a string, got {type(cat).__name__}", path=path)
    ip = r["image_path"]
    if not isinstance(ip, list) or not ip or not all(isinstance(p, str) for p in ip):
        raise DataError(f"index {sid}: image_path: expected a non-empty list of strings", path=path)
    if not isinstance(r["question"], str):
        raise DataError(f"index {sid}: question: expected a string", path=path)
    options = {k: str(r[k]) for k in LETTERS if r[k] is not None}
    if len(options) < 2:
        raise DataError(f"index {sid}: options: a question needs at least 2 of A, B, C, got {len(options)}",
                        path=path)
    ans = str(r["answer"]).strip()
    if ans not in options:
        raise DataError(f"index {sid}: answer {r['answer']!r} is not one of the options "
                        f"{', '.join(options)}", path=path)
    doc: dict[str, Any] = dict(r)
    return Sample(id=sid, question_type=cat, kind="mca", prompt=build_prompt(doc, variant), target=ans,
                  task=card.tasks.get(cat, cat), options=options,
                  visual={"images": [str(root / p) for p in ip]}, pair_idx=r["pair_idx"], doc=doc)


def load_samples(card: BenchmarkCard, data: str | Path, *, video_root: str | Path | None = None,
                 image_root: str | Path | None = None, prompt_variant: str | None = None) -> list[Sample]:
    """Load All-Angles questions as :class:`Sample` s (file order), validating every field.

    A record with a missing field or a bad value becomes a failed sample naming the file, record
    and field (the others still run); an unreadable file or a category the card does not know stops
    with a one-line DataError.

    Images resolve to ``{image_root}/{image_path[i]}``; ``image_root`` defaults to the folder of
    ``data.json``.
    """
    recs, path = read_records(data, card)
    variant = card.variant(prompt_variant)
    root = Path(image_root) if image_root is not None else path.parent
    samples: list[Sample] = []
    seen: set[str] = set()
    for i, r in enumerate(recs):
        sid = str(r.get("index", f"row{i}")) if isinstance(r, dict) else f"row{i}"
        if sid in seen:
            raise DataError(f"index {sid}: duplicate index", path=path)
        seen.add(sid)
        cat = r.get("category") if isinstance(r, dict) else None
        if isinstance(cat, str) and cat not in card.question_types:  # the card does not describe this data
            raise DataError(f"index {sid}: unknown category {cat!r}", path=path)
        try:
            samples.append(_sample(r, i, sid, card, variant, root, path))
        except DataError as e:  # one bad record: a failed sample, the others still run
            qt = cat if isinstance(cat, str) else "?"
            samples.append(invalid_sample(sid, row_error(path, i, e), qt, card.tasks.get(qt, qt)))
    return samples


def read_images(paths: list[str]) -> list:
    """Open the view images as uint8 RGB arrays [H, W, 3] (in order); a missing/unreadable one is a
    DataError naming the file."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
        except FileNotFoundError:
            raise DataError("image not found", path=p) from None
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"unreadable image ({type(e).__name__})", path=p) from None
    return out
