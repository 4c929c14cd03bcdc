"""User-facing errors.

Anything the user can fix (a bad file, an unknown name, a wrong config value) is raised as a
:class:`GaspError` whose message is one line naming the file or field. The CLI prints it and exits
with status 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class GaspError(Exception):
    """An error the user can fix; its message is one line naming the file or field."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None):
        msg = " ".join(str(message).split())  # one line, always
        if path is not None:
            msg = f"{path}: {msg}"
        super().__init__(msg)
        self.path = None if path is None else Path(path)


class ConfigError(GaspError):
    """A recipe/config with an unknown key or a wrong type."""


class DataError(GaspError):
    """A scene, dataset or run folder that is missing or malformed."""


class ModelError(GaspError):
    """A model that cannot be loaded or is not supported."""
