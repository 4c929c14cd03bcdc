"""The GASP training config: one typed dataclass, every field documented, defaults with reasons.

Load it from TOML/YAML (``gaspprobe train --config cfg.toml``) or build it in Python
(``TrainConfig(steps=200)``); unknown keys and wrong types are one-line
:class:`~gaspprobe.errors.ConfigError` s naming the key. The resolved config is saved in the
run's ``manifest.json``; a rerun on a complete run folder with the same config is a no-op.

Defaults target the tiny offline models (``gaspprobe model tiny``) on a 2-core CPU; what to
change for a real 7B model is in ``docs/training.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from gaspprobe.config import field
from gaspprobe.errors import ConfigError

@dataclass
class TrainConfig:
    """Everything that decides a GASP training run (see ``docs/training.md``)."""

    # ------------------------------------------------------------------ schedule
    seed: int = field(0, help="Seed for heads init, LoRA init, clip sampling and the validation split.")
    steps: int = field(600, help="Optimizer steps (each = grad_accum micro-batches of batch_size clips).")
    batch_size: int = field(2, help="Clips per micro-batch per process.")
    grad_accum: int = field(1, help="Micro-batches accumulated per optimizer step.")
    lr: float = field(2e-3, help="Peak learning rate (AdamW) for LoRA, vision side and heads.")
    head_lr: float | None = field(None, help="Learning rate of the heads; None = lr.")
    weight_decay: float = field(0.0, help="AdamW weight decay (0: LoRA adapters and tiny heads need none).")
    warmup_steps: int = field(20, help="Linear warm-up steps.")
    schedule: Literal["constant", "cosine", "linear"] = field("cosine", help="LR decay after warm-up.")
    max_grad_norm: float = field(1.0, help="Gradient clipping (0 = off).")
    mixed_precision: Literal["no", "bf16", "fp16"] = field("no", help="accelerate mixed precision.")

    # ------------------------------------------------------------------ data
    frames_per_clip: int = field(8, help="Frames per clip, fed as one multi-image forward pass (paper: 8-24).")
    clip_window: int = field(12, help="Frames of a clip are drawn within +-clip_window of an anchor frame "
                                      "(paper: +-48 at video frame rate), so gaps vary from 1 to 2*clip_window.")
    clips_per_scene: int = field(64, help="Clips drawn per training scene per epoch (re-drawn every epoch).")
    val_fraction: float = field(0.2, help="Fraction of the TRAINING scenes held back for validation.")
    depth_tol: float | None = field(None, help="GT match depth tolerance (None = the scenes' default).")
    source_weights: dict = field(default_factory=dict,
                                 help="Mixing weights of several scene sources {name: weight} (train(scenes={name: "
                                      "folder, ...}) or --scenes A --scenes B, named by folder): each epoch draws "
                                      "clips from source k in proportion w_k / sum(w), scenes uniformly within it; "
                                      "missing sources weigh 1. {} = every training scene clips_per_scene times "
                                      "(sources in proportion to their scene counts).")
    lazy_scenes: bool = field(False, help="Read scene frames on first use through a small cache (memory flat in the "
                                          "number of scenes; frame counts and sizes from a scenes.parquet index when "
                                          "there is one) instead of loading every scene up front. Same run either way.")
    num_workers: int = field(0, help="DataLoader worker processes that build clips and their GT matches off the "
                                     "training process (0 = in process). The batches, and so the run, are the "
                                     "same for any value.")
    gt_grids: list[int] = field(default_factory=list,
                                help="Extra square GT grids (e.g. [8, 24]: the paper's coarse/fine) on which the "
                                     "correspondence loss is also computed by resampling head features; "
                                     "[] = the model's own token grid only.")

    # ------------------------------------------------------------------ what trains
    full: bool = field(False, help="Full fine-tuning of the language model instead of LoRA.")
    lora_rank: int = field(32, help="LoRA rank (paper: 128 on Qwen2.5-VL-7B, 512 on LLaVA-Video-7B).")
    lora_alpha: float = field(64.0, help="LoRA alpha (scale = alpha / rank).")
    lora_dropout: float = field(0.0, help="LoRA dropout (0 keeps resume bitwise exact without extra RNG).")
    lora_targets: str | None = field(
        None, help="Regex of module names given LoRA (language model only). None = the family's default "
                   "(FamilySpec.lora_targets: its language model's linear layers, e.g. "
                   "'.*\\.language_model\\..*\\.(q_proj|...)' or '.*\\.text_model\\..*' for Idefics3; a plain "
                   "name list would also hit the vision tower's MLPs). The resolved pattern is in the "
                   "manifest's plan.")
    vision: Literal["auto", "none", "projector", "tower"] = field(
        "auto", help="Vision side that trains: none, the projector/merger, or the whole tower. auto = projector "
                     "for tiny random models (their random tower caps accuracy near pixel matching), none for "
                     "pretrained ones.")

    # ------------------------------------------------------------------ heads and losses
    layers: str = field("all", help="Supervised layers: 'all' (every LLM layer), or a comma list of names and "
                                    "ranges, e.g. 'llm.10-llm.18' or 'vision,llm.0-llm.3'.")
    layer_weights: dict = field(default_factory=dict,
                                help="Per-layer loss weights {layer: w} (missing layers weigh 1).")
    head_dim: int = field(0, help="Head output size e (head is d -> 2e -> e); 0 = min(256, hidden // 2).")
    head_init: Literal["svd", "random"] = field("svd", help="Head init: SVD of the layer's q_proj, or random.")
    temperature: float = field(0.07, help="InfoNCE temperature (also the depth soft-argmax temperature).")
    match_weighting: Literal["match", "pair"] = field(
        "match", help="Average the losses over GT matches ('match') or over frame pairs ('pair': far-apart "
                      "frames, which share fewer matches, weigh as much as close ones).")
    lambda_corr: float = field(1.0, help="Weight of the correspondence (InfoNCE) loss.")
    lambda_depth: float = field(0.1, help="Weight of the depth-consistency loss (a regulariser, as in the paper).")
    lambda_lm: float = field(0.0, help="Weight of the LM loss on plain captions (off: no caption data here).")
    caption_file: str | None = field(None, help="Plain-text captions, one per line, for the optional LM loss.")
    mix_data: list[str] = field(default_factory=list,
                                help="The paper's joint mix: instruction-data files (LLaVA-Video-178K / LLaVA-OneVision "
                                     "conversation JSON or JSONL: media paths + conversations) trained under the "
                                     "LM loss (weight lambda_lm) beside the geometry losses. [] = off. No 3D "
                                     "question-answer data (docs/training.md says why).")
    mix_media_root: str | None = field(None, help="Folder the mix data's media paths are relative to "
                                                  "(None = each JSON file's folder).")
    mix_ratio: float = field(0.5, help="Conversation samples per geometry micro-batch (per process), e.g. 0.5 = "
                                       "one every second micro-batch.")
    mix_video_frames: int = field(8, help="Frames decoded evenly from a mix record's video.")
    mix_video_input: str = field("video", help="How a mix record's video is fed: 'video' (the family's own video "
                                               "path where it has one, else images) or 'images' (frames as images).")

    # ------------------------------------------------------------------ run
    checkpoint_every: int = field(50, help="Steps between checkpoints (safetensors, atomic).")
    keep_checkpoints: int = field(2, help="Checkpoints kept on disk.")
    eval_every: int = field(100, help="Steps between validation evaluations (0 = only at the end).")
    val_frames: int = field(32, help="Validation feeds each validation scene's first val_frames frames in ONE "
                                     "forward, as the probe's default recipe does.")
    val_gaps: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 24],
                                help="Frame gaps compared in validation (the probe's default).")
    val_pairs_per_gap: int = field(4, help="Frame pairs per gap and validation scene (both directions).")
    log_groups: int = field(4, help="In-batch accuracy is logged for this many contiguous layer groups.")
    threads: int = field(0, help="torch intra-op threads (0 = leave torch's default).")
    modality: str = field("images", help="How clips are fed: 'images' (each frame an image) or 'video' (each clip "
                                         "ONE video through the family's video processor; the geometry losses "
                                         "then pair temporal token slices, each at its first frame).")
    video_fps: float = field(2.0, help="With modality video: the frame rate the model is told (qwen-vl-utils' "
                                       "sampling rate by default).")
    min_pixels: int | None = field(None, help="Processor pixel budget: lower bound of a frame's area after "
                                              "resizing (None = the checkpoint's). Saved with the model.")
    max_pixels: int | None = field(None, help="Processor pixel budget: upper bound of a frame's area "
                                              "(None = the checkpoint's). Saved with the model.")
    time_limit_s: float = field(0.0, help="Stop early after this many seconds of training (0 = off). A time "
                                          "limit makes the step count machine-dependent; the step reached "
                                          "is recorded in the manifest.")

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "grad_accum", "frames_per_clip", "clips_per_scene",
                    "checkpoint_every", "keep_checkpoints", "log_groups", "val_frames", "val_pairs_per_gap")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        from gaspprobe.models.video import check_modality

        check_modality(self.modality)
        if not self.video_fps > 0:
            raise ConfigError(f"video_fps: must be > 0, got {self.video_fps}")
        if self.frames_per_clip < 2:
            raise ConfigError("frames_per_clip: correspondences need at least 2 frames per clip")
        if self.clip_window < 1:
            raise ConfigError(f"clip_window: must be >= 1, got {self.clip_window}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction: must be in [0, 1), got {self.val_fraction}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature: must be > 0, got {self.temperature}")
        if self.lr <= 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        if not self.full and self.lora_rank < 1:
            raise ConfigError(f"lora_rank: must be >= 1, got {self.lora_rank}")
        if self.head_dim < 0:
            raise ConfigError(f"head_dim: must be >= 0, got {self.head_dim}")
        if not self.val_gaps or min(self.val_gaps) < 1:
            raise ConfigError(f"val_gaps: expected gaps >= 1, got {self.val_gaps}")
        for g in self.gt_grids:
            if g < 1:
                raise ConfigError(f"gt_grids: grid sizes must be >= 1, got {g}")
        if min(self.lambda_corr, self.lambda_depth, self.lambda_lm) < 0:
            raise ConfigError("lambda_*: loss weights must be >= 0")
        if self.lambda_corr == 0 and self.lambda_depth == 0 and self.lambda_lm == 0:
            raise ConfigError("lambda_corr, lambda_depth, lambda_lm: all zero, nothing to train")
        if self.lambda_lm > 0 and not self.caption_file and not self.mix_data:
            raise ConfigError("caption_file: required when lambda_lm > 0 (plain captions, one per line), or mix_data")
        if self.mix_data and self.lambda_lm <= 0:
            raise ConfigError("lambda_lm: must be > 0 when mix_data is set (the mix trains under the LM loss)")
        if self.mix_data and self.mix_ratio <= 0:
            raise ConfigError(f"mix_ratio: must be > 0 when mix_data is set, got {self.mix_ratio}")
        if self.mix_video_input not in ("video", "images"):
            raise ConfigError(f"mix_video_input: expected 'video' or 'images', got {self.mix_video_input!r}")
        if self.mix_video_frames < 1:
            raise ConfigError(f"mix_video_frames: must be >= 1, got {self.mix_video_frames}")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers: must be >= 0, got {self.num_workers}")
        for k, v in self.source_weights.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"source_weights.{k}: expected a number >= 0, got {v!r}")
        if self.source_weights and sum(self.source_weights.values()) <= 0:
            raise ConfigError("source_weights: all zero, no source to draw clips from")
        for k, v in self.layer_weights.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"layer_weights.{k}: expected a number >= 0, got {v!r}")


def parse_layers(spec: str, num_layers: int) -> list[str]:
    """Resolve a layer spec to layer names, in model order.

    ``"all"`` -> ``["llm.0", ..., "llm.{N-1}"]``; otherwise a comma list of names (``vision``,
    ``llm.i``, negative ``llm.-1`` for the last) and inclusive ranges ``llm.a-llm.b``.
    """
    from gaspprobe.models.adapter import layer_names

    known = layer_names(num_layers)
    if spec.strip() == "all":
        return known[1:]

    def one(name: str) -> int:
        name = name.strip()
        if name == "vision":
            return 0
        if name.startswith("llm."):
            try:
                i = int(name[4:])
            except ValueError:
                i = None
            if i is not None:
                if i < 0:
                    i += num_layers
                if 0 <= i < num_layers:
                    return i + 1
        raise ConfigError(f"layers: unknown layer {name!r}; known: vision, llm.0 ... llm.{num_layers - 1}")

    picked: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(.+?)-(llm\.-?\d+|vision)", part)
        if m:
            lo, hi = one(m.group(1)), one(m.group(2))
            if lo > hi:
                raise ConfigError(f"layers: empty range {part!r}")
            picked.update(range(lo, hi + 1))
        else:
            picked.add(one(part))
    if not picked:
        raise ConfigError(f"layers: no layer selected by {spec!r}")
    return [known[i] for i in sorted(picked)]
