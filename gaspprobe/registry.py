"""One small registry class, reused for model adapters, benchmarks and metrics.

Entries can be objects or lazy ``"module:attr"`` strings, so ``gaspprobe model list`` does not
import torch. Unknown names get a one-line error with a "did you mean" and the full list.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Callable, Generic, Iterator, TypeVar

from gaspprobe.errors import GaspError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping with lazy entries and helpful errors.

    >>> r = Registry("metric"); r.register("acc", "math:fabs"); r.get("acc")(-1.0)
    1.0
    """

    def __init__(self, kind: str, before_import: "Callable[[], object] | None" = None):
        self.kind = kind
        self._entries: dict[str, object] = {}
        #: called once before the first lazy ``"module:attr"`` entry is imported (e.g. making
        #: torchvision importable before a model family's transformers classes load)
        self._before_import = before_import

    def register(self, name: str, obj: T | str | None = None):
        """Register ``obj`` (or a ``"module:attr"`` string) under ``name``; usable as a decorator."""
        if obj is None:

            def deco(o: T) -> T:
                self.register(name, o)
                return o

            return deco
        if name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj
        return obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> T:
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), self.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise GaspError(
                f"unknown {self.kind} {name!r}{hint}; supported: {', '.join(self.names())}"
            )
        obj = self._entries[name]
        if isinstance(obj, str) and ":" in obj:
            if self._before_import is not None:
                hook, self._before_import = self._before_import, None
                hook()
            mod, attr = obj.split(":", 1)
            obj = getattr(importlib.import_module(mod), attr)
            self._entries[name] = obj
        return obj  # type: ignore[return-value]
