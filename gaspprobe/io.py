"""Atomic writes, tidy result tables and run manifests: the only place that writes results.

Every file a run produces goes through :func:`atomic_write_bytes` (temp file in the same folder,
fsync, ``os.replace``), so a killed process leaves either the old file or the new one, never half
of one. Run folders carry ``manifest.json`` (config, seed, versions, git sha, status); a run is
finished only when its manifest says ``"status": "complete"``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from gaspprobe.errors import DataError

MANIFEST = "manifest.json"


# --------------------------------------------------------------------------- atomic writes
def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename; see :func:`atomic_path`)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(o: Any):
    if is_dataclass(o):
        return asdict(o)
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n"


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, to_json(_finite(obj)))


def _finite(obj: Any) -> Any:
    """Replace NaN/inf floats with None: JSON has no NaN, and a metric with n=0 is 'no value'."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if is_dataclass(obj) and not isinstance(obj, type):
        return _finite(asdict(obj))
    return obj


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` only if the block succeeds.

    For writers that want a filename (``savefig``, ``save_file``, ``to_parquet``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"not valid JSON ({e})", path=path) from None


# --------------------------------------------------------------------------- tables
def write_table(df, path: str | Path, *, csv: bool = True) -> Path:
    """Write a tidy pandas table as parquet (and a CSV twin for people), atomically."""
    path = Path(path).with_suffix(".parquet")
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())
    if csv:
        atomic_write_text(path.with_suffix(".csv"), df.to_csv(index=False))
    return path


def read_table(path: str | Path):
    import pandas as pd

    path = Path(path)
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except Exception as e:  # pyarrow raises several types for garbage files
        raise DataError(f"not a readable parquet table ({type(e).__name__})", path=path) from None


class JsonlAppender:
    """Append-only JSONL writer that flushes and fsyncs each record.

    A crash can at worst leave a last partial line, which :func:`read_jsonl` drops; every complete
    line is a finished record, so resuming never recomputes it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_partial_line(self.path)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(_finite(record), default=_json_default) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _truncate_partial_line(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)


def read_jsonl(path: str | Path) -> list[dict]:
    """Read complete JSONL records; a trailing partial line (a killed writer) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    # split bytes, not text: a killed writer's partial last line may end inside a UTF-8 character
    for i, raw in enumerate(path.read_bytes().split(b"\n")[:-1]):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise DataError(f"line {i + 1} is not UTF-8 text", path=path) from None
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            raise DataError(f"line {i + 1} is not valid JSON", path=path) from None
    return out


# --------------------------------------------------------------------------- manifests
def package_versions(names: Iterable[str] = ("gaspprobe", "torch", "transformers", "peft",
                                             "accelerate", "datasets", "numpy", "pandas")) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = None
    return out


def git_sha() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                           timeout=5)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def make_manifest(kind: str, config: Any, *, seed: int | None = None, status: str = "running",
                  **extra: Any) -> dict:
    """A run manifest: what ran, with which config, seed and versions."""
    cfg = asdict(config) if is_dataclass(config) else config
    return {
        "kind": kind,
        "status": status,
        "config": cfg,
        "seed": seed,
        "versions": package_versions(),
        "git_sha": git_sha(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


def write_manifest(run_dir: str | Path, manifest: dict) -> Path:
    return atomic_write_json(Path(run_dir) / MANIFEST, manifest)


def read_manifest(run_dir: str | Path, *, kind: str | None = None) -> dict:
    """Read a run's manifest; a folder that is not a gaspprobe run gets a one-line error."""
    run_dir = Path(run_dir)
    p = run_dir / MANIFEST
    if not run_dir.is_dir():
        raise DataError("not a folder", path=run_dir)
    if not p.exists():
        raise DataError("not a gaspprobe run (no manifest.json)", path=run_dir)
    m = read_json(p)
    if not isinstance(m, dict) or "kind" not in m:
        raise DataError("manifest.json has no 'kind': not a gaspprobe run", path=run_dir)
    if kind is not None and m["kind"] != kind:
        raise DataError(f"is a {m['kind']!r} run, expected {kind!r}", path=run_dir)
    return m


def is_complete(run_dir: str | Path, *, kind: str | None = None, config: Any = None) -> bool:
    """True when ``run_dir`` holds a finished run of ``kind`` with the same config."""
    try:
        m = read_manifest(run_dir, kind=kind)
    except DataError:
        return False
    if m.get("status") != "complete":
        return False
    if config is not None:
        cfg = asdict(config) if is_dataclass(config) else config
        return json.loads(to_json(_finite(cfg))) == m.get("config")
    return True
