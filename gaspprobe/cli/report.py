"""CLI: `gaspprobe report` (placeholder until its issue lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the `report` command to the main app."""
