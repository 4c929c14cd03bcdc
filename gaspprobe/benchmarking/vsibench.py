"""VSI-Bench: loading (HF ``nyu-visionx/VSI-Bench`` or a local parquet of the same schema), the
official prompt, and uniform video frame sampling with PyAV.

Official source reproduced: ``vision-x-nyu/thinking-in-space`` ``lmms_eval/tasks/vsibench/``
(``vsibench.yaml``: split ``test``, greedy, ``max_new_tokens: 16``; ``utils.py``:
``vsibench_doc_to_visual`` -> ``{dataset}/{scene_name}.mp4``, ``vsibench_doc_to_text``).
Frames: k indices ``np.linspace(0, n - 1, k, dtype=int)`` over the whole video (lmms-eval's
``llava_onevision.load_video``), k = 32 by default and recorded in every summary.

Schema (checked on load; a mismatch is a one-line :class:`DataError` naming the column or row):
``id`` int, ``dataset`` str, ``scene_name`` str, ``question_type`` (10 raw types), ``question``
str, ``ground_truth`` str (a letter for MCA, a positive number for NA), ``options`` list of str
carrying their ``"A. "`` prefix (MCA; null/empty allowed for NA).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from gaspprobe.benchmarking.card import BenchmarkCard, Sample, invalid_sample, row_error
from gaspprobe.errors import DataError

COLUMNS = ("id", "dataset", "scene_name", "question_type", "question", "ground_truth", "options")
_OPTION_RE = re.compile(r"^([A-Z])\. ")


# --------------------------------------------------------------------------- prompt
def build_prompt(doc: dict, variant: dict, kind: str) -> str:
    """The official ``vsibench_doc_to_text``.

    NA: ``pre + "\\n" + question + "\\n" + na_post``.
    MCA: ``"\\n".join([pre, question, "Options:\\n" + "\\n".join(options), mca_post])``.
    An empty configured pre-prompt falls back to "These are frames of a video." as in the code.
    """
    pre = variant.get("pre_prompt") or "These are frames of a video."
    if kind == "na":
        post = variant.get("na_post_prompt") or "Please answer the question using a single word or phrase."
        return pre + "\n" + doc["question"] + "\n" + post
    post = variant.get("mca_post_prompt") or "Answer with the option's letter from the given choices directly."
    options = "Options:\n" + "\n".join(doc["options"])
    return "\n".join([pre, doc["question"], options, post])


# --------------------------------------------------------------------------- loading
def read_questions(data: str | Path, card: BenchmarkCard):
    """Read the question table as a pandas DataFrame.

    ``data`` is a parquet file, a folder holding ``card.dataset.data_file`` (or any single
    ``*.parquet``), or ``"hf"`` / the card's HF id, which calls
    ``datasets.load_dataset(hf_id, config, split=split, revision=revision)`` (needs the hub).
    """
    import pandas as pd

    ds = card.dataset
    if str(data) in ("hf", ds.hf_id or "\0"):
        if not ds.hf_id:
            raise DataError(f"benchmark {card.name} has no Hugging Face dataset; pass a local --data")
        import datasets

        kw = {"split": ds.split, "revision": ds.revision}
        hf = datasets.load_dataset(ds.hf_id, ds.config, **kw) if ds.config else datasets.load_dataset(ds.hf_id, **kw)
        return hf.to_pandas()
    path = Path(data)
    if path.is_dir():
        cand = path / (ds.data_file or "")
        if ds.data_file and cand.is_file():
            path = cand
        else:
            found = sorted(path.glob("*.parquet"))
            if len(found) != 1:
                raise DataError(f"expected {ds.data_file or 'one *.parquet file'} in the folder "
                                f"(found {len(found)} parquet files)", path=path)
            path = found[0]
    if not path.is_file():
        raise DataError("question file not found", path=path)
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types on garbage
        raise DataError(f"not a readable parquet table ({type(e).__name__})", path=path) from None
    df.attrs["path"] = str(path)
    return df


def _options_list(v: Any) -> list[str]:
    if v is None:
        return []
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, float) and v != v:  # NaN from pandas
        return []
    if not isinstance(v, (list, tuple)):
        raise TypeError
    return [str(x) for x in v]


def default_video_root(data: str | Path, card: BenchmarkCard) -> Path:
    """Videos beside a local question file; for hub data lmms-eval's ``$HF_HOME/vsibench``."""
    if str(data) in ("hf", card.dataset.hf_id or "\0"):
        hf_home = os.path.expanduser(os.environ.get("HF_HOME", "~/.cache/huggingface/"))
        return Path(hf_home) / (card.dataset.video_dir or "vsibench")
    p = Path(data)
    return p if p.is_dir() else p.parent


def _sample(row: dict, sid: str, qt: str, card: BenchmarkCard, variant: dict, root: Path, where: str) -> Sample:
    """One validated row (DataError naming the id and the field otherwise)."""
    kind = card.question_types[qt]
    for col in ("dataset", "scene_name", "question", "ground_truth"):
        if not isinstance(row[col], str):
            raise DataError(f"id {sid}: {col}: expected a string, got {type(row[col]).__name__}", path=where)
    try:
        opts = _options_list(row["options"])
    except TypeError:
        raise DataError(f"id {sid}: options: expected a list of strings", path=where) from None
    letters: dict[str, str] = {}
    gt = row["ground_truth"].strip()
    if kind == "mca":
        if len(opts) < 2:
            raise DataError(f"id {sid}: options: a multiple-choice question needs at least 2 options, got "
                            f"{len(opts)}", path=where)
        for j, o in enumerate(opts):
            m = _OPTION_RE.match(o)
            if not m:
                raise DataError(f"id {sid}: options: {o!r} does not start with its letter ('A. ...')", path=where)
            if m.group(1) != chr(65 + j):
                raise DataError(f"id {sid}: options: option {j + 1} is lettered {m.group(1)!r}, expected "
                                f"{chr(65 + j)!r}", path=where)
            letters[m.group(1)] = o[m.end():]
        if gt.upper() not in letters:
            raise DataError(f"id {sid}: ground_truth {gt!r} is not one of the option letters", path=where)
    else:
        try:
            y = float(gt)
        except ValueError:
            raise DataError(f"id {sid}: ground_truth {gt!r} is not a number", path=where) from None
        if not (y > 0 and y < float("inf")):
            raise DataError(f"id {sid}: ground_truth {gt!r} must be a positive number (MRA divides by it)",
                            path=where)
    doc = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items()}
    doc["options"] = opts
    return Sample(id=sid, question_type=qt, kind=kind, prompt=build_prompt(doc, variant, kind), target=gt,
                  task=card.tasks.get(qt, qt), options=letters,
                  visual={"video": str(root / row["dataset"] / f"{row['scene_name']}.mp4")}, doc=doc)


def load_samples(card: BenchmarkCard, data: str | Path, *, video_root: str | Path | None = None,
                 image_root: str | Path | None = None, prompt_variant: str | None = None) -> list[Sample]:
    """Load VSI-format questions as :class:`Sample` s (dataset order), validating the schema.

    A missing column, an unreadable file or a question type the card does not know stops with a
    one-line DataError; a row with a bad value (ground truth, options, a field of the wrong type)
    becomes a failed sample naming the file, row and field, and the others still run."""
    df = read_questions(data, card)
    where = df.attrs.get("path", str(data))
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)} (VSI-Bench schema: {', '.join(COLUMNS)})",
                        path=where)
    variant = card.variant(prompt_variant)
    root = Path(video_root) if video_root is not None else default_video_root(data, card)
    samples: list[Sample] = []
    seen: set[str] = set()
    for i, row in enumerate(df[list(COLUMNS)].to_dict("records")):
        rid = row["id"]
        try:
            sid = str(int(rid))
        except (TypeError, ValueError):
            raise DataError(f"row {i}: id: expected an integer, got {rid!r}", path=where) from None
        if sid in seen:
            raise DataError(f"id {sid}: duplicate id", path=where)
        seen.add(sid)
        qt = row["question_type"]
        if qt not in card.question_types:  # the card does not describe this data: stop
            raise DataError(f"id {sid}: unknown question_type {qt!r}", path=where)
        try:
            samples.append(_sample(row, sid, qt, card, variant, root, where))
        except DataError as e:  # one bad row: a failed sample, the others still run
            samples.append(invalid_sample(sid, row_error(where, i, e), qt, card.tasks.get(qt, qt)))
    return samples


# --------------------------------------------------------------------------- video frames
def frame_indices(n: int, k: int):
    """Uniform frame indices over the whole video: ``np.linspace(0, n-1, k, dtype=int)`` (floor),
    exactly lmms-eval's ``load_video``; repeats frames when ``k > n``. Returns int64 array [k]."""
    import numpy as np

    return np.linspace(0, n - 1, k, dtype=int)


def read_video_frames(path: str | Path, k: int, sampler: str = "linspace", info: dict | None = None):
    """Decode ``k`` uniformly sampled RGB frames with PyAV (``sampler``: see
    :func:`gaspprobe.benchmarking.profiles.sample_indices`, which also gets the stream's average
    frame rate; a sampler may return k + 1 frames or repeat frames).

    n is the container's frame count (``stream.frames``, what decord's ``len()`` reads from the
    index); when the container does not say, or fewer frames decode than it says, n is the number
    of frames that actually decode.

    ``info``, when given, receives ``{"n": n, "fps": average frame rate or None}``.

    Returns ``(frames, indices, n)``: uint8 array [k', H, W, 3], the int indices [k'] and n. Raises
    :class:`DataError` naming the file when it is missing or unreadable.
    """
    import av
    import numpy as np

    from gaspprobe.benchmarking.profiles import sample_indices

    video_fps = [None]

    def frame_indices(n: int, k: int):
        return sample_indices(n, k, sampler, video_fps[0])

    path = Path(path)
    if not path.is_file():
        raise DataError("video not found", path=path)

    def decode(idx) -> tuple[dict[int, Any], int]:
        wanted = set(int(i) for i in idx)
        got: dict[int, Any] = {}
        count = 0
        with av.open(str(path)) as c:
            st = c.streams.video[0]
            st.thread_type = "AUTO"
            for i, fr in enumerate(c.decode(st)):
                count = i + 1
                if i in wanted:
                    got[i] = fr.to_ndarray(format="rgb24")
                if len(idx) and i >= idx[-1]:
                    break
        return got, count

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DataError("no video stream", path=path)
            n = int(c.streams.video[0].frames or 0)
            rate = c.streams.video[0].average_rate
            video_fps[0] = float(rate) if rate else None
        if n <= 0:  # the container does not say: count the frames that decode
            n = decode([])[1]
        if n == 0:
            raise DataError("video has no decodable frames", path=path)
        idx = frame_indices(n, k)
        got, count = decode(idx)
        if len(got) < len(set(int(i) for i in idx)):  # fewer decodable frames than the index says
            n = decode([])[1]
            if n == 0:
                raise DataError("video has no decodable frames", path=path)
            idx = frame_indices(n, k)
            got, _ = decode(idx)
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, IndexError, ValueError) as e:
        raise DataError(f"unreadable video ({type(e).__name__}: {str(e)[:80]})", path=path) from None
    if info is not None:
        info.update(n=n, fps=video_fps[0])
    return np.stack([got[int(i)] for i in idx]), idx, n
