"""Streaming capture: the worker threads that run a forward while the consumer takes one layer at
a time (:meth:`gaspprobe.models.base.BaseAdapter.capture`)."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable


class _WorkerPool:
    """Long-lived daemon threads that run capture forwards.

    A fresh thread per capture would pay per-thread set-up every time (CUDA/cuBLAS handles,
    the OpenMP team), which is milliseconds against a tiny model's forward; idle workers are reused.
    A capture started while another is being consumed (nested loops) gets another worker.
    """

    def __init__(self) -> None:
        self._idle: list[queue.Queue] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], None]) -> None:
        with self._lock:
            jobs = self._idle.pop() if self._idle else None
        if jobs is None:
            jobs = queue.Queue()
            threading.Thread(target=self._loop, args=(jobs,), name="gaspprobe-capture", daemon=True).start()
        jobs.put(fn)

    def _loop(self, jobs: queue.Queue) -> None:
        while True:
            fn = jobs.get()
            try:
                fn()
            finally:
                with self._lock:
                    self._idle.append(jobs)


_POOL = _WorkerPool()


@dataclass
class _Failure:
    exc: BaseException
