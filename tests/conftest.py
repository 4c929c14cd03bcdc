"""Shared test set-up: one torch thread (fast and stable on a 2-core box), seeded RNGs."""

from __future__ import annotations

import os
import random

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    # where torchvision is installed, transformers imports it: make it importable before any test
    # module imports transformers classes directly (gaspprobe.models.video)
    from gaspprobe.models.video import ensure_torchvision

    ensure_torchvision()


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    try:
        import numpy as np

        np.random.seed(0)
        import torch

        torch.manual_seed(0)
    except ImportError:  # pragma: no cover
        pass
    yield
