"""Shared CLI helpers: one rich console, seeding and thread settings."""

from __future__ import annotations

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def set_threads(n: int | None) -> None:
    """Set torch's intra-op threads (1 is fastest on a busy 2-core box; None keeps the default)."""
    if n:
        import torch

        torch.set_num_threads(int(n))
