"""Probe recipes: the typed, validated description of one probe run.

A recipe says which frames of each scene go into one forward pass (the clip), which frame pairs
are compared (gaps, pairs per gap, seed), how ground truth is built (depth tolerance), what is
measured (feature modes, tolerances r, confidence temperature, depth probe) and on which layers.

Recipes live as TOML files under ``gaspprobe/probing/recipes/``: ``gasp.toml`` is the default
(unchanged numbers), ``paper.toml`` measures exactly what the GASP paper plots (PCK@2patch
headline, every Δt 1..24), ``quick.toml`` a fast one; :func:`load_recipe` accepts a :class:`Recipe`, a path, a
recipe name (``"gasp"``) or ``None`` (the defaults, identical to ``gaspprobe/probing/recipes/gasp.toml``), then
applies keyword overrides (the CLI flags). Unknown keys and wrong types raise a one-line
:class:`~gaspprobe.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gaspprobe import config as C
from gaspprobe.errors import ConfigError

DEFAULT_GAPS = (1, 2, 4, 8, 16, 24)


@dataclass
class Recipe:
    """Everything that decides the numbers of a probe run (saved in the run's manifest)."""

    frames_per_clip: int = C.field(
        32, help="frames of each scene fed to the model in ONE forward pass (the first N frames; "
                 "fewer if the scene is shorter). Gaps are counted in these frames.")
    gaps: list[int] = C.field(
        default_factory=lambda: list(DEFAULT_GAPS),
        help="frame gaps g of the compared pairs (i, i+g); gaps >= the clip length are skipped")
    pairs_per_gap: int = C.field(
        4, help="frame pairs sampled per scene and gap (fewer if the clip has fewer distinct pairs)")
    both_directions: bool = C.field(
        True, help="also match each sampled pair in reverse (j -> i)")
    depth_tol: float = C.field(
        0.05, help="relative depth tolerance of the GT visibility test "
                   "(|z_proj - depth_j| / depth_j <= tol; larger = occluded, dropped)")
    tolerances: list[int] = C.field(
        default_factory=lambda: [0, 1],
        help="match tolerances r in patches (Chebyshev distance in (row, col)); r=0 is the exact token")
    modes: list[str] = C.field(
        default_factory=lambda: ["hidden", "attention"],
        help="feature sources, all through the same matcher: 'hidden' (cosine of hidden states), "
             "'attention' (the layer's own q.k logits, heads averaged), 'q', 'k', 'v' (projections, "
             "heads concatenated, before rotary), 'q_rope', 'k_rope' (after rotary), 'oracle:xyz' "
             "(world points on the model's grid: upper bound), 'oracle:random' (chance); see "
             "gaspprobe.probing.features")
    headline_r: int = C.field(
        0, help="the tolerance (in patches) of the headline number: the peak layer is chosen on it, "
                "and robustness and the per-gap curve are measured at it (the paper: 2 = PCK@2patch)")
    patch_unit: str = C.field(
        "llm_token", help="what one 'patch' of a tolerance r is: 'llm_token' (one image token of the "
                          "LLM) or 'vision_patch' (one vision-encoder patch; a token merging s x s "
                          "patches then counts within floor(r / s) tokens). Written on every table")
    frame_stride: int = C.field(
        1, help="the clip takes every k-th frame of the scene (frames 0, k, 2k, ...); gaps (Δt) are "
                "counted in clip frames")
    fps: float | None = C.field(
        None, help="the frame rate of the scene's frames (recorded with the results so Δt converts "
                   "to seconds: Δt * frame_stride / fps); None = unknown")
    skip_long_gaps: bool = C.field(
        True, help="skip gaps a scene's clip cannot hold (True, the gasp/quick recipes) or refuse "
                   "them before the model loads (False, the paper recipe: every Δt must be measured)")
    conf_temperature: float = C.field(
        0.07, help="temperature of the hidden-mode softmax confidence: softmax(cos / T) over the "
                   "target frame's tokens (attention mode uses the model's own logits, T=1)")
    layers: list[str] | None = C.field(
        None, help="layers to probe ('vision', 'llm.0', ...); None = all")
    per_frame: bool = C.field(
        False, help="encode each frame in its own forward pass (no cross-frame attention)")
    modality: str = C.field(
        "images", help="how the clip is fed: 'images' (each frame an image) or 'video' (the frames as ONE "
                       "video through the family's own video processor; a token then covers the frames "
                       "of its temporal slice, anchored at the first: see docs/probe.md, Video input)")
    video_fps: float | None = C.field(
        None, help="with modality video: the frame rate the model is told (Qwen2.5/3-VL turn it into "
                   "temporal positions). None = fps / frame_stride when fps is known, else 2.0 "
                   "(qwen-vl-utils' sampling rate). The value in effect is recorded")
    min_pixels: int | None = C.field(
        None, help="the processor's pixel budget: lower bound of a frame's area after resizing "
                   "(Qwen-style min_pixels; other families map it onto their size setting). None = the "
                   "checkpoint's own. Recorded in the manifest with every setting in effect")
    max_pixels: int | None = C.field(
        None, help="the processor's pixel budget: upper bound of a frame's area (max_pixels). None = "
                   "the checkpoint's own (e.g. 12.8 MP for Qwen2.5-VL: 1296x968 frames -> 1610 tokens "
                   "each)")
    depth_probe: bool = C.field(
        True, help="fit the linear (ridge) depth probe per layer on hidden states")
    ridge_lambda: float = C.field(
        0.1, help="ridge penalty, relative: lambda * mean diagonal of the centred Gram matrix")
    depth_train_fraction: float = C.field(
        0.5, help="fraction of scenes (the first ones, in order) used to fit the depth probe; "
                  "the rest are held out and scored")
    seed: int = C.field(0, help="seed of the pair sampling (and of oracle:random features)")

    def __post_init__(self) -> None:
        from gaspprobe.probing.features import check_sources

        self.modes = check_sources(list(self.modes))
        if self.frames_per_clip < 1:
            raise ConfigError(f"frames_per_clip: must be >= 1, got {self.frames_per_clip}")
        if not self.gaps or any(g < 1 for g in self.gaps):
            raise ConfigError(f"gaps: expected a non-empty list of integers >= 1, got {self.gaps!r}")
        if self.pairs_per_gap < 1:
            raise ConfigError(f"pairs_per_gap: must be >= 1, got {self.pairs_per_gap}")
        if not self.tolerances or any(r < 0 for r in self.tolerances):
            raise ConfigError(f"tolerances: expected integers >= 0, got {self.tolerances!r}")
        if 0 not in self.tolerances:
            raise ConfigError("tolerances: must include 0 (the exact-token accuracy)")
        if self.headline_r not in self.tolerances:
            raise ConfigError(f"headline_r: {self.headline_r} is not one of the tolerances {self.tolerances}")
        if self.patch_unit not in ("llm_token", "vision_patch"):
            raise ConfigError(f"patch_unit: expected 'llm_token' or 'vision_patch', got {self.patch_unit!r}")
        if self.frame_stride < 1:
            raise ConfigError(f"frame_stride: must be >= 1, got {self.frame_stride}")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"fps: must be > 0 (or omitted), got {self.fps}")
        if not self.skip_long_gaps and max(self.gaps) >= self.frames_per_clip:
            raise ConfigError(f"gaps: Δt {max(self.gaps)} needs clips of {max(self.gaps) + 1} frames, "
                              f"frames_per_clip is {self.frames_per_clip}")
        from gaspprobe.models.video import check_modality

        check_modality(self.modality)
        if self.modality == "video" and self.per_frame:
            raise ConfigError("per_frame: a video is one sequence of frames; per_frame takes modality 'images'")
        if self.video_fps is not None and not self.video_fps > 0:
            raise ConfigError(f"video_fps: must be > 0 (or omitted), got {self.video_fps}")
        if self.depth_tol <= 0:
            raise ConfigError(f"depth_tol: must be > 0, got {self.depth_tol}")
        if self.conf_temperature <= 0:
            raise ConfigError(f"conf_temperature: must be > 0, got {self.conf_temperature}")
        if self.ridge_lambda < 0:
            raise ConfigError(f"ridge_lambda: must be >= 0, got {self.ridge_lambda}")
        if not 0.0 < self.depth_train_fraction < 1.0:
            raise ConfigError(f"depth_train_fraction: must be in (0, 1), got {self.depth_train_fraction}")
        self.gaps = sorted(set(self.gaps))
        self.tolerances = sorted(set(self.tolerances))


def effective_video_fps(rcp: "Recipe") -> float:
    """The frame rate a video clip of ``rcp`` is said to have (:attr:`Recipe.video_fps`)."""
    if rcp.video_fps is not None:
        return float(rcp.video_fps)
    if rcp.fps is not None:
        return float(rcp.fps) / rcp.frame_stride
    return 2.0


def recipes_dir() -> Path:
    """The packaged recipes folder (``gaspprobe/probing/recipes/``; ships with the wheel)."""
    return Path(__file__).resolve().parent / "recipes"


def available_recipes() -> list[str]:
    d = recipes_dir()
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def load_recipe(recipe: "Recipe | str | Path | None" = None, **overrides: Any) -> Recipe:
    """Resolve ``recipe`` (a Recipe, a file path, a name under ``gaspprobe/probing/recipes/``, or None = defaults)
    and apply ``overrides`` (keys of :class:`Recipe`; ``None`` values are ignored)."""
    if isinstance(recipe, Recipe):
        data, where = dataclasses.asdict(recipe), ""
    elif recipe is None:
        data, where = {}, ""
    else:
        p = Path(recipe)
        if not p.suffix and not p.is_file():  # a folder named like a recipe (e.g. --out paper) is not one
            cand = recipes_dir() / f"{recipe}.toml"
            if not cand.is_file():
                if str(recipe) == "gasp":  # the defaults are the gasp recipe, even when not installed
                    data, where = {}, ""
                    return _apply(data, where, overrides)
                known = ", ".join(available_recipes()) or "(none found)"
                raise ConfigError(f"recipe: unknown recipe {str(recipe)!r}; known: {known} "
                                  "(or give a path to a .toml file)")
            p = cand
        data, where = C.load_file(p), str(p)
    return _apply(data, where, overrides)


def _apply(data: dict, where: str, overrides: dict) -> Recipe:
    data = dict(data)
    for k, v in overrides.items():
        if v is not None:
            data[k] = v
    return C.from_dict(Recipe, data, where=where)
