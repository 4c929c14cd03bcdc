"""The run kernel: the ONE module that owns a run folder.

Every producer (``scenes make``, ``model tiny``, ``bench synthesize``, ``probe``, ``train``,
``bench run`` / ``score``, ``report``) opens its output folder through :func:`open_run`, which

1. **locks** it: an exclusive ``flock`` on ``.<name>.lock`` beside the folder, so two processes
   started on one folder (two terminals, a scheduler retry) never interleave. The second one waits
   (``wait=True``) or is refused with one line naming the holder (pid, host, command). The kernel
   releases a flock when its process dies, so a lock left by a killed process never blocks the
   next run.
2. **decides** what to do from the folder's ``manifest.json`` and the new run's identity (kind,
   config and the few extra keys that define it, e.g. the model):

   ==========  =============================================================================
   fresh       no folder, an empty folder, or ``on_change="replace"`` with a differing run
   cached      a complete run with the same identity: nothing to do (``run.cached``)
   resume      an unfinished run with the same identity (incremental producers continue it)
   refused     another kind, a folder that is not a run, or a run whose identity differs:
               one-line :class:`~gaspprobe.errors.DataError` naming the folder and the keys
   ==========  =============================================================================
3. **publishes** atomically and writes the final manifest:

   * ``staged`` producers (probe, report, model tiny, bench data) write into ``run.dir``, a hidden
     temp folder beside ``out``; :meth:`Run.complete` writes the manifest there last and swaps the
     folder in (old run renamed away, new one renamed in, old one deleted). A kill at any point
     leaves the old run or the new one, never a mix.
   * ``incremental`` producers (bench run, train, scenes make) write in place (each piece
     atomically: JSONL records, checkpoints, one scene folder at a time) under a ``running``
     manifest, and :meth:`Run.complete` flips it to ``complete``. A killed run resumes.

The manifest keeps the keys every reader uses (``kind, status, config, seed, versions, git_sha,
created``) plus the producer's extras; ``label`` (the loop's "base"/"gasp") is written by the
producer through ``open_run(..., label=...)``, never patched in afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Literal

from gaspprobe import io
from gaspprobe.errors import DataError

Decision = Literal["fresh", "cached", "resume"]
Publish = Literal["staged", "incremental"]


def _jsonable(obj: Any) -> Any:
    """The manifest's JSON round trip (dataclasses -> dicts, tuples -> lists, NaN -> None)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        obj = asdict(obj)
    return json.loads(io.to_json(io._finite(obj)))


def diff_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like values (sorted; ``[]`` when equal)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in old or k not in new:
                out.append(key)
            else:
                out.extend(diff_keys(old[k], new[k], key))
        return out
    return [] if old == new else [prefix or "(value)"]


# --------------------------------------------------------------------------- locking
class RunLock:
    """An exclusive advisory lock on ``<parent>/.<name>.lock`` (``fcntl.flock``; released by the OS
    when the holder dies, so a killed process never leaves a lock that blocks forever)."""

    def __init__(self, out: Path, *, wait: bool = False, timeout: float | None = None):
        self.out = Path(out)
        self.path = self.out.parent / f".{self.out.name}.lock"
        self.wait = wait
        self.timeout = timeout
        self._fd: int | None = None

    def _holder(self) -> str:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "another process"
        cmd = info.get("cmd", "")
        return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}" + (
            f" ({cmd[:80]})" if cmd else "")

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock, as before
            self._fd = fd
            return self
        t0 = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not self.wait or (self.timeout is not None and time.monotonic() - t0 > self.timeout):
                    holder = self._holder()
                    os.close(fd)
                    raise DataError(f"is in use by {holder}; wait for it to finish or stop it",
                                    path=self.out) from None
                time.sleep(0.2)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "cmd": " ".join(sys.argv)[:200]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# --------------------------------------------------------------------------- the run
@dataclass
class Run:
    """An open run folder. Use as a context manager (the lock is held until the block ends).

    Attributes:
        out: the run folder users see.
        dir: where to write now (``out`` for incremental runs; a temp folder for staged ones).
        decision: ``fresh``, ``cached`` or ``resume``.
        manifest: the existing manifest (cached/resume), else None.
    """

    out: Path
    kind: str
    config: Any
    publish: Publish
    decision: Decision
    dir: Path
    seed: int | None = None
    label: str | None = None
    identity: dict = field(default_factory=dict)
    manifest: dict | None = None
    _lock: RunLock | None = None
    _done: bool = False

    @property
    def cached(self) -> bool:
        return self.decision == "cached"

    @property
    def resumed(self) -> bool:
        return self.decision == "resume"

    def _manifest(self, status: str, extra: dict) -> dict:
        m = io.make_manifest(self.kind, _jsonable(self.config), seed=self.seed, status=status,
                             **self.identity, **extra)
        if self.label is not None:
            m["model_label"] = self.label
        return m

    def start(self, **extra: Any) -> None:
        """Write a ``running`` manifest (incremental runs, before the first piece of work)."""
        io.write_manifest(self.dir, self._manifest("running", extra))

    def complete(self, **extra: Any) -> dict:
        """Write the final manifest last and, for a staged run, swap the folder in atomically."""
        m = self._manifest("complete", extra)
        io.write_manifest(self.dir, m)
        if self.publish == "staged" and self.dir != self.out:
            swap_in(self.dir, self.out)
            self.dir = self.out
        self.manifest = m
        self._done = True
        return m

    def close(self, ok: bool = True) -> None:
        if self.publish == "staged" and not self._done and self.dir != self.out:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(ok=exc_type is None)


def swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` onto ``out``: old one renamed away first, deleted last.

    If the second rename fails the old run is renamed back, so ``out`` is the old run or the new
    one, never a mix (a kill between the two renames leaves ``out`` absent and the old run in a
    hidden ``.<name>.old-*`` folder beside it, which the next run removes)."""
    tmp, out = Path(tmp), Path(out)
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)
        raise
    io._fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _clean_leftovers(out: Path) -> None:
    """Remove temp/old folders of earlier staged runs of ``out`` that were killed (we hold the lock)."""
    if not out.parent.is_dir():
        return
    for p in out.parent.glob(f".{out.name}.*"):
        if p.is_dir() and (".tmp-" in p.name or ".old-" in p.name):
            shutil.rmtree(p, ignore_errors=True)


def decide(out: Path, kind: str, config: Any, identity: dict, *, on_change: str = "refuse",
           resumable: bool = True) -> tuple[Decision, dict | None]:
    """What to do with ``out`` for a run of ``kind`` with this config and identity (no locking)."""
    out = Path(out)
    if not out.exists():
        return "fresh", None
    if not out.is_dir():
        raise DataError("exists and is not a folder", path=out)
    if not (out / io.MANIFEST).exists():
        if not any(out.iterdir()):
            return "fresh", None
        if on_change == "replace":
            raise DataError(f"exists and is not a gaspprobe {kind} run (no manifest.json); "
                            "choose an empty or new folder", path=out)
        raise DataError(f"exists, is not empty and is not a gaspprobe run (no manifest.json); "
                        "choose an empty or new folder", path=out)
    m = io.read_manifest(out)
    if m.get("kind") != kind:
        raise DataError(f"holds a {m.get('kind')!r} run, not a {kind!r} run; choose another folder",
                        path=out)
    new = {"config": _jsonable(config), **{k: _jsonable(v) for k, v in identity.items()}}
    old = {"config": m.get("config"), **{k: m.get(k) for k in identity}}
    keys = diff_keys(old, new)
    if keys:
        if on_change == "replace":
            return "fresh", m
        shown = ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")
        raise DataError(f"holds a {kind} run with a different {shown}; use a new folder or remove "
                        "it", path=out)
    if m.get("status") == "complete":
        return "cached", m
    return ("resume" if resumable else "fresh"), m


def open_run(out: str | Path, kind: str, config: Any, *, publish: Publish = "staged",
             identity: dict | None = None, seed: int | None = None, label: str | None = None,
             on_change: str = "refuse", force: bool = False, wait: bool = False,
             lock_timeout: float | None = None) -> Run:
    """Lock ``out`` and decide fresh / cached / resume / refused for a run of ``kind``.

    Args:
        out: the run folder.
        kind: ``"probe"``, ``"train"``, ``"bench"``, ``"scenes"``, ``"model"``, ``"report"``, ...
        config: the run's config (dataclass or dict): part of its identity.
        publish: ``"staged"`` (write in a temp folder, swap in on :meth:`Run.complete`) or
            ``"incremental"`` (write in place under a ``running`` manifest; resumable).
        identity: other manifest keys that define the run (e.g. ``{"model": ...}``); compared too.
        seed, label: recorded in the manifest (``label`` as ``model_label``).
        on_change: ``"refuse"`` (default: one line naming the differing keys) or ``"replace"``
            (a run with another identity is replaced: the producer starts fresh).
        force: start fresh even over a complete or differing run of the same kind.
        wait: wait for another process holding the folder instead of refusing.

    Returns a :class:`Run`; use it as a context manager so the lock is released.
    """
    out = Path(out)
    identity = dict(identity or {})
    lock = RunLock(out, wait=wait, timeout=lock_timeout).acquire()
    try:
        _clean_leftovers(out)
        decision, m = decide(out, kind, config, identity,
                             on_change="replace" if force else on_change,
                             resumable=publish == "incremental")
        if force and decision == "cached":
            decision = "fresh"
        if decision == "fresh" and publish == "incremental" and m is not None and out.exists():
            # an incremental producer replacing a differing (or forced) run starts from an empty folder
            shutil.rmtree(out)
        if publish == "staged" and decision == "fresh":
            out.parent.mkdir(parents=True, exist_ok=True)
            d = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
            # mkdtemp makes the folder 0700; the published run gets what a plain mkdir would give
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(d, 0o777 & ~umask)
        else:
            d = out
            if decision != "cached":
                out.mkdir(parents=True, exist_ok=True)
        return Run(out=out, kind=kind, config=config, publish=publish, decision=decision, dir=d,
                   seed=seed, label=label, identity=identity, manifest=m, _lock=lock)
    except BaseException:
        lock.release()
        raise
