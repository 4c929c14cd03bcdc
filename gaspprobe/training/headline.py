"""The GASP headline's training config at toy scale (the loop's ``headline`` preset trains with it).

The experiment itself is a preset of the loop, not a second orchestrator:
``gaspprobe loop --preset headline --out runs/headline`` builds the tiny Qwen2.5-VL, makes 96
training scenes (seed 1000) and 16 held-out scenes (seed 2000: no held-out room, texture or camera
path is trained on), probes the base model, trains with :data:`HEADLINE_CONFIG` (1400 steps,
capped at 10 minutes on 2 threads), probes the trained model and writes ``headline.json`` /
``headline.md`` against the targets (see ``gaspprobe/pipeline.py`` and docs/training.md).
"""

from __future__ import annotations

#: The headline's training config, chosen on the validation split of the TRAINING scenes (64 scenes,
#: seed 1000, 20% held back; see docs/training.md "Choosing the defaults"): full fine-tuning of the
#: tiny LLM + the whole (random) vision tower, whole-scene 16-frame clips as the probe feeds them.
#: ``docs/train_example.toml`` holds the same values (a test keeps them equal).
HEADLINE_CONFIG = {
    "full": True, "vision": "tower", "lr": 1e-3, "frames_per_clip": 16, "batch_size": 1, "clip_window": 8,
    "steps": 1400, "eval_every": 0, "checkpoint_every": 100,
}
