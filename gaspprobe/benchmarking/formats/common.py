"""Shared plumbing for the format loaders: rows from the hub or a local file, embedded images
written once to files, one-line row errors, circular option rotation, and the generic aggregations.

Where data comes from (``data`` argument of every loader):

- ``"hf"`` or the card's HF id: ``datasets.load_dataset(hf_id, config, split=..., revision=...)``,
  with every ``Image`` feature left undecoded (``{"bytes", "path"}``, what the parquet stores).
- a local ``.parquet`` (read with pyarrow: image columns are the same ``{"bytes", "path"}``
  structs), ``.json`` (a list of records), ``.jsonl`` or ``.tsv`` (VLMEvalKit style; list cells
  written as JSON, images as base64) file in the same schema, or a folder holding the card's
  ``data_file`` (or exactly one such file).

Images embedded in a row are written once, named by their SHA-256, under
``$GASPPROBE_IMAGE_CACHE`` (default ``~/.cache/gaspprobe/bench_images``), so a :class:`Sample`
carries plain file paths as the runner expects; image paths in a row resolve against
``image_root`` (default: the folder of the question file).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from gaspprobe.benchmarking.card import BenchmarkCard
from gaspprobe.errors import DataError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
FILE_TYPES = (".parquet", ".json", ".jsonl", ".tsv")


# --------------------------------------------------------------------------- errors
def row_error(where: Any, i: int, rid: Any, field: str, msg: str) -> DataError:
    """The one-line error for a bad row: ``<file>: row <i> (id <id>): <field>: <msg>``."""
    ident = f"row {i}" + ("" if rid is None else f" (id {rid})")
    return DataError(f"{ident}: {field}: {msg}", path=str(where))


def require(row: Any, fields: Iterable[str], where: Any, i: int, rid: Any = None, schema: str = "") -> None:
    """Raise naming the file, row and first missing field when ``row`` lacks any of ``fields``."""
    if not isinstance(row, dict):
        raise row_error(where, i, rid, "row", f"expected an object, got {type(row).__name__}")
    missing = [f for f in fields if f not in row]
    if missing:
        hint = f" ({schema} schema: {', '.join(fields)})" if schema else ""
        raise row_error(where, i, rid, missing[0], f"missing field{hint}")


def text(row: dict, field: str, where: Any, i: int, rid: Any = None, *, allow_empty: bool = False) -> str:
    """``row[field]`` as a string (error naming the field when it is not one)."""
    v = row.get(field)
    if not isinstance(v, str) or (not allow_empty and not v.strip()):
        raise row_error(where, i, rid, field, f"expected a non-empty string, got {v!r:.60}")
    return v


def _listish(v: Any) -> Any:
    """A list cell as a list where it can be one: JSON text starting with ``[`` (a TSV cell) is
    parsed, an array (pyarrow / numpy) converted; anything else comes back unchanged."""
    if isinstance(v, str) and v.startswith("["):
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            pass
    if hasattr(v, "tolist"):
        v = v.tolist()
    return v


def str_list(row: dict, field: str, where: Any, i: int, rid: Any = None) -> list[str]:
    """``row[field]`` as a non-empty list of strings (a TSV cell may hold it as JSON)."""
    v = _listish(row.get(field))
    if not isinstance(v, (list, tuple)) or not v or not all(isinstance(x, str) for x in v):
        raise row_error(where, i, rid, field, f"expected a non-empty list of strings, got {v!r:.60}")
    return list(v)


def check_count(opts: Sequence, n: int | Sequence[int], field: str, where: Any, i: int, rid: Any) -> None:
    """Options lists of the wrong length are a row error (``n`` is the allowed length or lengths)."""
    ok = (n,) if isinstance(n, int) else tuple(n)
    if len(opts) not in ok:
        contiguous = len(ok) > 2 and list(ok) == list(range(ok[0], ok[-1] + 1))
        want = f"{ok[0]} to {ok[-1]}" if contiguous else " or ".join(str(k) for k in ok)
        raise row_error(where, i, rid, field, f"expected {want} options, got {len(opts)}")


# --------------------------------------------------------------------------- reading rows
def is_hub(data: Any, card: BenchmarkCard) -> bool:
    return str(data) in ("hf", card.dataset.hf_id or "\0")


def _undecoded(feature):
    """The same feature with every Image left undecoded (bytes + path, as the parquet stores it)."""
    import datasets

    if isinstance(feature, datasets.Image):
        return datasets.Image(decode=False)
    if isinstance(feature, datasets.Sequence):
        return datasets.Sequence(_undecoded(feature.feature), length=feature.length)
    if isinstance(feature, list):
        return [_undecoded(f) for f in feature]
    if isinstance(feature, dict):
        return {k: _undecoded(v) for k, v in feature.items()}
    if type(feature).__name__ == "List" and hasattr(feature, "feature"):  # datasets >= 4 List
        return type(feature)(_undecoded(feature.feature))
    return feature


def read_hub(card: BenchmarkCard) -> Iterable[dict]:
    """The rows of the card's HF dataset (config, split, revision), images undecoded; iterated from
    the memory-mapped Arrow table, so only one row's image bytes are in memory at a time."""
    ds = card.dataset
    if not ds.hf_id:
        raise DataError(f"benchmark {card.name} has no Hugging Face dataset; pass a local --data")
    import datasets

    kw: dict[str, Any] = {"split": ds.split, "revision": ds.revision}
    hf = datasets.load_dataset(ds.hf_id, ds.config, **kw) if ds.config else datasets.load_dataset(ds.hf_id, **kw)
    feats = hf.features
    new = datasets.Features({k: _undecoded(v) for k, v in feats.items()})
    if new != feats:
        hf = hf.cast(new)
    return hf


def find_file(data: Any, card: BenchmarkCard, types: Sequence[str] = FILE_TYPES) -> Path:
    """The question file: ``data`` itself, or inside the folder ``data`` the card's ``data_file``
    (else the single file of an accepted type)."""
    path = Path(data)
    if path.is_dir():
        cand = path / (card.dataset.data_file or "\0")
        if card.dataset.data_file and cand.is_file():
            return cand
        found = sorted(p for p in path.iterdir() if p.suffix in types and p.is_file())
        if len(found) != 1:
            want = card.dataset.data_file or f"one {'/'.join(types)} file"
            raise DataError(f"expected {want} in the folder (found {len(found)} candidate files)", path=path)
        return found[0]
    if not path.is_file():
        raise DataError("question file not found", path=path)
    if path.suffix not in types:
        raise DataError(f"unsupported question file type {path.suffix!r} (expected {', '.join(types)})", path=path)
    return path


def read_file(path: Path) -> list[dict]:
    """Rows of a local ``.parquet`` / ``.json`` / ``.jsonl`` / ``.tsv`` file as plain dicts."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        if path.suffix == ".tsv":
            import pandas as pd

            df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
            return df.to_dict("records")
        raw = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in raw.splitlines() if line.strip()]
        recs = json.loads(raw)
    except DataError:
        raise
    except Exception as e:  # pyarrow / json / pandas raise many types on garbage
        raise DataError(f"not a readable {path.suffix} question file ({type(e).__name__})", path=path) from None
    if not isinstance(recs, list):
        raise DataError(f"expected a JSON list of questions, got {type(recs).__name__}", path=path)
    return recs


def read_rows(data: Any, card: BenchmarkCard,
              types: Sequence[str] = FILE_TYPES) -> tuple[Iterable[dict], str, Path | None]:
    """``(rows, where, folder)``: the rows, a name for errors (file or ``hf:<id>``) and the
    folder relative image paths resolve against (None for hub data)."""
    if is_hub(data, card):
        return read_hub(card), f"hf:{card.dataset.hf_id}", None
    path = find_file(data, card, types)
    return read_file(path), str(path), path.parent


def sources(data: Any, card: BenchmarkCard) -> list[Any]:
    """What to read: ``[data]``, or for a card with ``dataset.data_files`` and a local folder, each
    of those files the folder holds, in the card's order (a DataError when it holds none)."""
    files = card.dataset.data_files
    if not files or is_hub(data, card) or not Path(data).is_dir():
        return [data]
    found = [Path(data) / f for f in files if (Path(data) / f).is_file()]
    if not found:
        raise DataError(f"expected one of {', '.join(files)} in the folder", path=data)
    return found


def open_rows(data: Any, card: BenchmarkCard, image_root: Any, prompt_variant: str | None,
              types: Sequence[str] = FILE_TYPES) -> tuple[Iterable[dict], str, Path | None, dict]:
    """``(rows, where, root, variant)``: :func:`read_rows`, the folder images resolve against
    (``image_root`` when given, else the question file's folder) and the card's prompt variant."""
    rows, where, folder = read_rows(data, card, types)
    root = Path(image_root) if image_root is not None else folder
    return rows, where, root, card.variant(prompt_variant)


def keyed_rows(rows: Iterable[dict], where: Any, fields: Sequence[str], schema: str, id_field: str | None,
               id_kind: str = "str", duplicate: str = "duplicate id") -> Iterator[tuple[int, dict, Any, str]]:
    """``(i, row, rid, sid)`` per row, after the checks every loader makes first: the row has
    ``fields`` (errors name ``schema``), its id ``row[id_field]`` parses (``id_kind``: ``"str"``
    any value, ``"int"`` an integer, ``"text"`` a non-empty string, ``"optional"`` the row number
    when absent) and is not repeated. ``id_field`` None: rows carry no id, the id is the row number."""
    seen: set[str] = set()
    for i, row in enumerate(rows):
        rid = row.get(id_field) if id_field is not None and isinstance(row, dict) else None
        require(row, fields, where, i, rid, schema)
        if id_field is None:
            yield i, row, rid, str(i)
            continue
        if id_kind == "int":
            try:
                sid = str(int(row[id_field]))
            except (TypeError, ValueError):
                raise row_error(where, i, rid, id_field,
                                f"expected an integer, got {row[id_field]!r:.40}") from None
        elif id_kind == "text":
            sid = text(row, id_field, where, i, rid)
        elif id_kind == "optional":
            sid = str(rid) if rid is not None else str(i)
        else:
            sid = str(row[id_field])
        if sid in seen:
            raise row_error(where, i, rid, id_field, duplicate)
        seen.add(sid)
        yield i, row, rid, sid


def some(samples: list, where: Any) -> list:
    """``samples``, unless there are none (a one-line DataError naming ``where``)."""
    if not samples:
        raise DataError("no questions", path=where)
    return samples


# --------------------------------------------------------------------------- images
def image_cache_dir() -> Path:
    """Where embedded images are written: ``$GASPPROBE_IMAGE_CACHE`` or ``~/.cache/gaspprobe/bench_images``."""
    env = os.environ.get("GASPPROBE_IMAGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "gaspprobe" / "bench_images"


def _suffix(b: bytes) -> str:
    if b[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if b[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
        return ".webp"
    return ".img"


def store_image_bytes(b: bytes) -> str:
    """Write image bytes once (content-addressed, atomic) and return the file path."""
    from gaspprobe.io import atomic_write_bytes

    d = image_cache_dir()
    p = d / (hashlib.sha256(b).hexdigest()[:32] + _suffix(b))
    if not p.is_file():
        atomic_write_bytes(p, b)
    return str(p)


_B64_MAGIC = ("iVBORw0KGgo", "/9j/", "UklGR", "R0lGOD")


def image_path(value: Any, where: Any, i: int, rid: Any, field: str, root: Path | None) -> str:
    """A file path for one image cell: HF ``{"bytes", "path"}`` struct, raw bytes, base64 text
    (VLMEvalKit TSV), a PIL image, or a path (relative to ``root``)."""
    if isinstance(value, dict):
        b = value.get("bytes")
        if b:
            return store_image_bytes(bytes(b))
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)) and value:
        return store_image_bytes(bytes(value))
    if hasattr(value, "save") and hasattr(value, "mode"):  # a decoded PIL image
        import io

        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return store_image_bytes(buf.getvalue())
    if isinstance(value, str) and value:
        if value.startswith(_B64_MAGIC):  # base64 image text (VLMEvalKit TSV): PNG, JPEG, WEBP, GIF
            try:
                return store_image_bytes(base64.b64decode(value, validate=True))
            except (ValueError, TypeError):
                raise row_error(where, i, rid, field, "not valid base64 image data") from None
        p = Path(value)
        if not p.is_absolute() and root is not None:
            p = root / p
        return str(p)
    raise row_error(where, i, rid, field,
                    f"expected an image (bytes, path or HF image struct), got {type(value).__name__}")


def image_list(value: Any, where: Any, i: int, rid: Any, field: str, root: Path | None) -> list[str]:
    """File paths for a list-of-images cell (a JSON list in a TSV cell is accepted)."""
    value = _listish(value)
    if not isinstance(value, (list, tuple)) or not value:
        raise row_error(where, i, rid, field, f"expected a non-empty list of images, got {type(value).__name__}")
    return [image_path(v, where, i, rid, f"{field}[{k}]", root) for k, v in enumerate(value)]


# --------------------------------------------------------------------------- circular evaluation
def rotations(options: Sequence[str], answer: int) -> list[tuple[list[str], int]]:
    """Circular evaluation (VLMEvalKit ``CircularEval``; 3DSRBench CE): the n cyclic shifts of
    the options, each with the index the answer moves to. Shift k puts option k first:
    ``rotated[j] = options[(j + k) % n]``, so the answer index becomes ``(answer - k) % n``.
    Shift 0 is the original question."""
    n = len(options)
    if not 0 <= answer < n:
        raise ValueError(f"answer index {answer} outside {n} options")
    return [([options[(j + k) % n] for j in range(n)], (answer - k) % n) for k in range(n)]


def group_scores(scores: Sequence[float], groups: Sequence[Any]) -> tuple[float, int]:
    """``(sum over groups of the product of their rows' scores, number of groups)``; a None group
    is its own row. With 0/1 scores a group scores 1 only when every row is correct (lmms-eval
    3DSRBench ``aggregate_circular_accuracy`` multiplies the same way); with expected scores
    (chance 1/n) the product is the chance of getting every row right."""
    prod: dict[Any, float] = {}
    for k, (s, g) in enumerate(zip(scores, groups)):
        key = ("row", k) if g is None else ("g", g)
        prod[key] = prod.get(key, 1.0) * float(s)
    return float(sum(prod.values())), len(prod)


# --------------------------------------------------------------------------- aggregations
def _pair_keys(df) -> list:
    if "pair_idx" not in df.columns:
        return [None] * len(df)
    return [None if (v is None or v != v) else v for v in df["pair_idx"].tolist()]


def micro_by_task(df) -> dict:
    """Accuracy over all questions (micro, x100), per task and per raw question type; the macro
    mean over tasks is reported as ``overall_macro`` (labelled, not the headline)."""
    n = len(df)
    tasks = {str(t): 100.0 * float(g["score"].mean()) for t, g in df.groupby("task", sort=True)}
    qts = {str(t): 100.0 * float(g["score"].mean()) for t, g in df.groupby("question_type", sort=True)}
    return {
        "overall": 100.0 * float(df["score"].mean()) if n else float("nan"),
        "overall_macro": sum(tasks.values()) / len(tasks) if tasks else float("nan"),
        "tasks": tasks, "question_types": qts,
        "n_per_task": {str(t): int(len(g)) for t, g in df.groupby("task", sort=True)},
    }


def circular_micro(df) -> dict:
    """Circular accuracy: rows sharing a ``pair_idx`` (the rotations of one question) count as
    one question, correct only when every rotation is; a row without ``pair_idx`` is its own
    question, so without rotations this is plain accuracy. ``overall_micro`` is the per-row
    (vanilla) accuracy; tasks and question types are circular too."""
    keys = _pair_keys(df)
    scores = df["score"].tolist()

    def circ(mask) -> tuple[float, int]:
        return group_scores([s for s, m in zip(scores, mask) if m], [k for k, m in zip(keys, mask) if m])

    out_t, out_q, n_t = {}, {}, {}
    for col, out in (("task", out_t), ("question_type", out_q)):
        vals = df[col].astype(str).tolist()
        for t in sorted(set(vals)):
            c, n = circ([v == t for v in vals])
            out[t] = 100.0 * c / n
            if col == "task":
                n_t[t] = n
    c, n = circ([True] * len(df))
    return {
        "overall": 100.0 * c / n if n else float("nan"),
        "overall_micro": 100.0 * float(df["score"].mean()) if len(df) else float("nan"),
        "tasks": out_t, "question_types": out_q, "n_per_task": n_t,
    }
