"""Typed dataclass configs: built from TOML/YAML/dicts, validated with errors that name the key.

Every config in gaspprobe is a dataclass whose fields carry ``metadata={"help": ...}``. Loading a
recipe goes through :func:`from_dict`, which rejects unknown keys and wrong types with a one-line
:class:`~gaspprobe.errors.ConfigError` ("gaspprobe/probing/recipes/x.toml: gaps: expected list[int], got str").
Nothing in a config is ever executed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from gaspprobe.errors import ConfigError

C = TypeVar("C")


def field(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING):
    """A dataclass field with a help string (shown by the CLI and the docs)."""
    kw: dict[str, Any] = {"metadata": {"help": help}}
    if default_factory is not dataclasses.MISSING:
        kw["default_factory"] = default_factory
    else:
        kw["default"] = default
    return dataclasses.field(**kw)


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _check(value: Any, tp: Any, key: str, where: str) -> Any:
    """Return ``value`` coerced to ``tp`` (ints to floats, lists to tuples) or raise naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    bad = ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} ({value!r:.60})",
                      path=where or None)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _check(value, a, key, where)
            except ConfigError:
                continue
        raise bad
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{key}: expected one of {list(args)}, got {value!r}", path=where or None)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise bad
            return tuple(_check(v, a, f"{key}[{i}]", where) for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        items = [_check(v, inner, f"{key}[{i}]", where) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise bad
        return from_dict(tp, value, where=where, prefix=f"{key}.")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        try:
            f = float(value)
        except OverflowError:  # a YAML integer beyond float range
            raise bad from None
        if not math.isfinite(f):  # TOML/YAML have nan/inf literals; no setting means them
            raise ConfigError(f"{key}: expected a finite number, got {value!r}", path=where or None)
        return f
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise bad
        return Path(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise bad
    return value


def from_dict(cls: type[C], data: dict, *, where: str | Path = "", prefix: str = "") -> C:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types by name."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a table of keys, got {type(data).__name__}",
                          path=str(where) or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for k, v in data.items():
        if not isinstance(k, str) or k not in fields:  # YAML allows non-string keys (`1: x`)
            close = difflib.get_close_matches(str(k), list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key {prefix}{k!r}{hint}; known: {', '.join(fields)}",
                              path=str(where) or None)
        kwargs[k] = _check(v, hints[k], f"{prefix}{k}", str(where))
    try:
        return cls(**kwargs)
    except ConfigError as e:  # a value check in the dataclass's __post_init__: name the file too
        if where and e.path is None:
            raise ConfigError(str(e), path=str(where)) from None
        raise
    except TypeError as e:
        raise ConfigError(str(e), path=str(where) or None) from None


def load_file(path: str | Path) -> dict:
    """Read a TOML or YAML file into a dict, with a one-line error on a missing/garbled file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("file not found", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"unreadable ({type(e).__name__}: not a UTF-8 text file?)", path=path) from None
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            out = yaml.safe_load(text)
            return {} if out is None else out
        if path.suffix == ".json":
            import json

            return json.loads(text)
    except Exception as e:
        raise ConfigError(f"cannot parse ({type(e).__name__}: {str(e).splitlines()[0][:120]})",
                          path=path) from None
    raise ConfigError("expected a .toml, .yaml or .json file", path=path)


def load(cls: type[C], path: str | Path | None = None, overrides: dict | None = None) -> C:
    """Build ``cls`` from a file (if given) with CLI ``overrides`` (``None`` values are ignored)."""
    data = load_file(path) if path is not None else {}
    for k, v in (overrides or {}).items():
        if v is not None:
            data[k] = v
    return from_dict(cls, data, where=path or "")


def replace(cfg: C, **changes: Any) -> C:
    """``dataclasses.replace`` with the same validation as :func:`from_dict`."""
    d = dataclasses.asdict(cfg)  # type: ignore[arg-type]
    d.update({k: v for k, v in changes.items() if v is not None})
    return from_dict(type(cfg), d)
