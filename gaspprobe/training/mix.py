"""The paper's joint mix: general image/video instruction data under the language-modelling loss.

GASP trains the geometry losses on 3D scenes *together with* ordinary instruction data, so the
model keeps its language ability; it uses no 3D question-answer data (its point is that geometry
comes from correspondence supervision, not from QA about space; training on spatial QA would also
contaminate the spatial benchmarks the method is judged on). This module reads that data in the
layout of LLaVA-Video-178K and LLaVA-OneVision (one JSON list, or JSONL, of records)::

    {"id": "...", "video": "academic/xyz.mp4",            # or "image": "coco/1.jpg" / ["a.jpg", "b.jpg"]
     "conversations": [{"from": "human", "value": "<image>\\nWhat happens?"},
                       {"from": "gpt", "value": "A man ..."}, ...]}

Media paths are relative to ``media_root`` (default: the JSON file's folder). Images open with
PIL; a video is decoded with PyAV into ``video_frames`` frames spread evenly over it and given to
the model through the family's own video path (its transformers video processor, as LLaVA-Video
training data is meant to be seen) where the family has one and ``video_input="video"`` (the
default), else as a multi-image input. Records without media are text-only conversations.

:class:`ConversationStream` decides which records go into micro-batch ``m`` as a pure function
of ``(seed, m)``: ``floor((m+1) * ratio) - floor(m * ratio)`` samples per process, taken from a
seeded permutation of the records redrawn every epoch, so a resumed run sees exactly the samples
an uninterrupted one would. :func:`encode` builds the processor inputs with labels on the
assistant turns only (everything else -100).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from gaspprobe.errors import DataError, ModelError

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_PLACEHOLDERS = ("<image>", "<video>")


@dataclass(frozen=True)
class Conversation:
    """One instruction record: its id, media files (images or one video) and (role, text) turns."""

    id: str
    media: tuple[Path, ...]
    kind: str | None                     # "image", "video" or None (text only)
    turns: tuple[tuple[str, str], ...]


def read_conversations(path: str | Path, media_root: str | Path | None = None) -> list[Conversation]:
    """Records of a LLaVA-Video-178K / LLaVA-OneVision JSON (or JSONL) file, checked up front:
    a malformed record or a missing media file is a one-line DataError naming the file and record."""
    p = Path(path)
    if not p.is_file():
        raise DataError("mix data file not found", path=p)
    root = Path(media_root) if media_root else p.parent
    try:
        text = p.read_text(encoding="utf-8")
        recs = ([json.loads(ln) for ln in text.splitlines() if ln.strip()] if p.suffix == ".jsonl"
                else json.loads(text))
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"not valid JSON ({type(e).__name__}: {str(e).splitlines()[0][:80]})", path=p) from None
    if not isinstance(recs, list) or not recs:
        raise DataError("expected a non-empty list of conversation records", path=p)
    out = []
    for i, r in enumerate(recs):
        rid = str(r.get("id", i)) if isinstance(r, dict) else str(i)
        where = f"record {i} (id {rid})"
        if not isinstance(r, dict) or not isinstance(r.get("conversations"), list) or not r["conversations"]:
            raise DataError(f"{where}: 'conversations' must be a non-empty list", path=p)
        turns = []
        for t in r["conversations"]:
            if not isinstance(t, dict) or t.get("from") not in ROLES or not isinstance(t.get("value"), str):
                raise DataError(f"{where}: each turn needs 'from' (human/gpt/system) and a string 'value'", path=p)
            turns.append((ROLES[t["from"]], t["value"]))
        if not any(role == "assistant" for role, _ in turns):
            raise DataError(f"{where}: no 'gpt' turn to learn from", path=p)
        if "video" in r and "image" in r:
            raise DataError(f"{where}: both 'video' and 'image'", path=p)
        kind = "video" if "video" in r else "image" if "image" in r else None
        files = r.get(kind) if kind else []
        files = [files] if isinstance(files, str) else files
        if kind and (not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files)):
            raise DataError(f"{where}: '{kind}' must be a path or a list of paths", path=p)
        if kind == "video" and len(files) != 1:
            raise DataError(f"{where}: 'video' must be one path", path=p)
        media = tuple(root / f for f in files)
        for m in media:
            if not m.is_file():
                raise DataError(f"{where}: media file not found: {m}", path=p)
        out.append(Conversation(rid, media, kind, tuple(turns)))
    return out


def load_media(conv: Conversation, video_frames: int) -> list:
    """PIL RGB images of a record: its images, or ``video_frames`` frames spread evenly over its video."""
    from PIL import Image

    if conv.kind is None:
        return []
    if conv.kind == "image":
        try:
            return [Image.open(m).convert("RGB") for m in conv.media]
        except OSError as e:
            raise DataError(f"unreadable image ({type(e).__name__})", path=conv.media[0]) from None
    import av

    try:
        with av.open(str(conv.media[0])) as c:
            frames = [f.to_image().convert("RGB") for f in c.decode(video=0)]
    except (av.error.FFmpegError, OSError) as e:
        raise DataError(f"unreadable video ({type(e).__name__})", path=conv.media[0]) from None
    if not frames:
        raise DataError("video has no frames", path=conv.media[0])
    n = min(video_frames, len(frames))
    idx = [round(k * (len(frames) - 1) / max(1, n - 1)) for k in range(n)] if n > 1 else [0]
    return [frames[i] for i in idx]


def _messages(turns: Sequence[tuple[str, str]], n_images: int, video: bool = False) -> list[dict]:
    """Chat messages in the processors' content-list form; the media go first in the first user turn
    (LLaVA's placeholders ``<image>`` / ``<video>`` are removed from the text); ``video``: one video
    entry instead of the images."""
    msgs, placed = [], False
    for role, text in turns:
        for ph in _PLACEHOLDERS:
            text = text.replace(ph, "")
        content: list[dict] = []
        if role == "user" and not placed:
            content += [{"type": "video"}] if video else [{"type": "image"} for _ in range(n_images)]
            placed = True
        content.append({"type": "text", "text": text.strip()})
        msgs.append({"role": role, "content": content})
    return msgs


def as_video(adapter: Any, conv: Conversation, video_input: str = "video") -> bool:
    """Whether a record's video goes through the family's video path (it has one, with its video processor)."""
    return (conv.kind == "video" and video_input == "video" and "video" in getattr(adapter, "modalities", tuple)()
            and getattr(adapter.processor, "video_processor", None) is not None)


def encode(adapter: Any, conv: Conversation, video_frames: int = 8, video_input: str = "video") -> dict:
    """Processor inputs of one record with ``labels``: the assistant turns' tokens, -100 elsewhere.

    Each assistant turn's span is found by rendering the conversation up to it (with the
    generation prompt) and through it; the chat template must render prefixes of a conversation
    as prefixes of its text (every template of the supported families does)."""
    import numpy as np

    proc = adapter.processor
    images = load_media(conv, video_frames)
    video = as_video(adapter, conv, video_input)
    msgs = _messages(conv.turns, len(images), video=video)
    if video:  # one video: the frames as decoded, through the family's own video processor
        clip = np.stack([np.asarray(im, dtype=np.uint8) for im in images])
        media = {"videos": [clip], "videos_kwargs": adapter._videos_kwargs([clip])}
    else:
        media = {"images": adapter._images_arg([images])} if images else {}

    def ids(text: str) -> torch.Tensor:
        return proc(text=[text], return_tensors="pt", **media)["input_ids"][0]

    full = proc.apply_chat_template(msgs, tokenize=False)
    inputs = proc(text=[full], return_tensors="pt", **media)
    labels = torch.full_like(inputs["input_ids"], -100)
    for t, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        pre = proc.apply_chat_template(msgs[:t], tokenize=False, add_generation_prompt=True)
        upto = proc.apply_chat_template(msgs[:t + 1], tokenize=False)
        if not (full.startswith(pre) and full.startswith(upto)):
            raise ModelError(f"{adapter.spec.display_name}: the chat template does not render a conversation's "
                             "turns as prefixes; cannot locate the assistant tokens for the LM loss")
        a, b = len(ids(pre)), len(ids(upto))
        labels[0, a:b] = inputs["input_ids"][0, a:b]
    out = dict(inputs)
    out["labels"] = labels
    return out


class ConversationStream:
    """Which conversation records go into each micro-batch, and their encoded inputs (see module doc)."""

    def __init__(self, convs: Sequence[Conversation], adapter: Any, ratio: float, seed: int, *,
                 video_frames: int = 8, rank: int = 0, world: int = 1, sources: Sequence[str] = (),
                 video_input: str = "video"):
        if not convs:
            raise DataError("no conversation records in the mix data")
        self.convs = list(convs)
        self.adapter, self.ratio, self.seed = adapter, float(ratio), int(seed)
        self.video_frames, self.rank, self.world = int(video_frames), int(rank), int(world)
        self.video_input = video_input
        self.sources = list(sources)
        self._perm: tuple[int, list[int]] | None = None

    def per_batch(self, m: int) -> range:
        """Sample numbers (per process) of micro-batch ``m`` (0-based)."""
        return range(math.floor(m * self.ratio), math.floor((m + 1) * self.ratio))

    def record(self, j: int) -> Conversation:
        """Global sample ``j``'s record: epoch ``j // n`` is a seeded permutation of the n records."""
        n = len(self.convs)
        e, i = divmod(j, n)
        if self._perm is None or self._perm[0] != e:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + 7 + e)
            self._perm = (e, torch.randperm(n, generator=g).tolist())
        return self.convs[self._perm[1][i]]

    def samples(self, m: int) -> list[Conversation]:
        return [self.record(k * self.world + self.rank) for k in self.per_batch(m)]

    def batch(self, position: int, device) -> list[dict]:
        """Encoded samples of the micro-batch that ends at data position ``position`` (counted from 1)."""
        out = []
        for conv in self.samples(position - 1):
            enc = encode(self.adapter, conv, self.video_frames, self.video_input)
            dt = self.adapter.dtype
            out.append({k: (v.to(device, dt) if v.is_floating_point() else v.to(device))
                        if isinstance(v, torch.Tensor) else v for k, v in enc.items()})
        return out
