"""Feature sources: what the matcher compares, named in a recipe's ``modes`` (one registry).

Every source goes through the same matcher (:func:`gaspprobe.probing.match.match_tokens`): for a
GT match (source token s of frame i, target token t of frame j) the prediction is the token of
frame j most similar to s. A source says where its per-layer features come from and which
similarity it uses:

==============  ================  ==========================================================
name            capture mode      features and similarity
==============  ================  ==========================================================
hidden          ``hidden``        the layer's output hidden states; cosine
attention       ``attention``     the layer's own logits ``q_s . k_t * 1/(H sqrt(dh))`` (rotary
                                  applied, heads averaged); the model's attention, exactly
q, k, v         ``q``/``k``/``v`` the layer's projections, heads concatenated, before rotary;
                                  cosine within the space (q_s vs q_t)
q_rope, k_rope  ``q_rope``/...    q / k after the rotary embedding; cosine
oracle:xyz      (no forward)      each token's box-centre world point on the model's own grid
                                  (:mod:`~gaspprobe.probing.oracle`); the geometric upper bound
oracle:random   (no forward)      seeded Gaussian features on the model's grid; chance
==============  ================  ==========================================================

q/k/v come from the adapter's capture modes of the same names (``adapter.capture(mode="q")``,
one :class:`~gaspprobe.models.adapter.LayerCapture` per layer with the tensor in ``feats``, or in
``query``/``key``/``value``). Oracle sources are measured on the layers of the model, once per
scene (their features do not depend on the layer; one row per layer keeps the tables uniform).
Adding a source: one :class:`FeatureSource` and one ``SOURCES.register`` line.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from gaspprobe.errors import ConfigError, ModelError
from gaspprobe.registry import Registry


@dataclass(frozen=True)
class FeatureSource:
    """One feature source (see the module docstring).

    ``capture_mode``: the adapter capture mode that yields it (None: computed from the scene and
    the token grid, no forward pass); ``cosine``: L2-normalise before the dot product;
    ``pair``: the source is a (query, key) pair matched with the model's attention scale;
    ``tensor_attr``: where the tensor sits in a LayerCapture when not in ``feats``;
    ``oracle``: "xyz"/"random" for the oracle sources."""

    name: str
    capture_mode: str | None
    cosine: bool = True
    pair: bool = False
    tensor_attr: str | None = None
    oracle: str | None = None
    doc: str = ""

    def tensors(self, cap: Any) -> tuple[Any, Any] | None:
        """(source-side, target-side) features of a capture, or None when this layer has none."""
        if self.pair:
            q, k = getattr(cap, "query", None), getattr(cap, "key", None)
            return None if q is None or k is None else (q, k)
        t = getattr(cap, "feats", None)
        if t is None and self.tensor_attr:
            t = getattr(cap, self.tensor_attr, None)
        return None if t is None else (t, t)


SOURCES: Registry[FeatureSource] = Registry("feature source")
for _s in (
    FeatureSource("hidden", "hidden", doc="cosine of the layer's output hidden states"),
    FeatureSource("attention", "attention", cosine=False, pair=True,
                  doc="the layer's own attention logits q.k (rotary applied, heads averaged)"),
    FeatureSource("q", "q", tensor_attr="query", doc="query projections (heads concatenated, before rotary); cosine"),
    FeatureSource("k", "k", tensor_attr="key", doc="key projections (heads concatenated, before rotary); cosine"),
    FeatureSource("v", "v", tensor_attr="value", doc="value projections (heads concatenated); cosine"),
    FeatureSource("q_rope", "q_rope", tensor_attr="query", doc="queries after the rotary embedding; cosine"),
    FeatureSource("k_rope", "k_rope", tensor_attr="key", doc="keys after the rotary embedding; cosine"),
    FeatureSource("oracle:xyz", None, oracle="xyz", doc="box-centre world points on the model's grid (upper bound)"),
    FeatureSource("oracle:random", None, oracle="random", doc="seeded Gaussian features on the model's grid (chance)"),
):
    SOURCES.register(_s.name, _s)

#: The order sources run and are listed in (hidden first: it is the primary mode when present).
ORDER = ("hidden", "attention", "q", "k", "v", "q_rope", "k_rope", "oracle:xyz", "oracle:random")


def check_sources(names: list[str], *, setting: str = "modes") -> list[str]:
    """The known sources among ``names`` in :data:`ORDER`; an unknown one is a one-line
    ConfigError naming the setting and the known sources."""
    bad = [n for n in names if n not in SOURCES]
    if bad or not names:
        raise ConfigError(f"{setting}: unknown feature source {bad[0] if bad else '(none given)'!r}; "
                          f"known: {', '.join(ORDER)}")
    return [n for n in ORDER if n in names]


def check_adapter_supports(adapter: Any, names: list[str], model_str: str) -> None:
    """Refuse q/k/v sources for an adapter that states it cannot capture them (one line).

    An adapter lists what it can hook in ``capture_modes`` (BaseAdapter); an adapter without that
    attribute is trusted and fails at capture time instead."""
    modes = getattr(adapter, "capture_modes", None)
    if modes is None:
        return
    modes = set(modes() if callable(modes) else modes)
    for n in names:
        cm = SOURCES.get(n).capture_mode
        if cm is not None and cm not in modes:
            raise ModelError(f"modes: feature source {n!r} needs capture mode {cm!r}, which "
                             f"{model_str} cannot hook (it has: {', '.join(sorted(modes))})")


def oracle_features(kind: str, clip: Any, grid: Any, *, seed: int) -> Any:
    """float [F, rows, cols, D] oracle features of ``clip`` on ``grid`` (the model's tokens)."""
    import torch

    F, rows, cols = grid.shape
    if kind == "xyz":
        from gaspprobe.probing.oracle import _xyz_capture
        from gaspprobe.scenes import token_world_points

        xyz, valid = token_world_points(clip, grid)
        return _xyz_capture("oracle", xyz.float(), valid.bool(), "hidden").feats
    if kind == "random":
        g = torch.Generator().manual_seed(((seed * 1000003) ^ zlib.crc32(str(clip.name).encode())) & 0x7FFFFFFF)
        return torch.randn((F, rows, cols, 64), generator=g)
    raise ModelError(f"unknown oracle {kind!r}")



def preflight(model: Any, names: list[str]) -> None:
    """Before any weights load: refuse q/k/v/attention sources a model given by name cannot hook.

    Reads the model's config, builds its module tree on the ``meta`` device (no memory, no
    weights) and asks the family's adapter which capture modes that tree offers
    (``capture_modes``). Anything that cannot be decided this way (a hub id without network, an
    adapter object, an oracle) is left to :func:`check_adapter_supports` after loading."""
    needs = [n for n in names if SOURCES.get(n).capture_mode not in (None, "hidden")]
    if not needs or not isinstance(model, (str, bytes)) and not hasattr(model, "__fspath__"):
        return
    src = str(model)
    if src.startswith("oracle:"):
        return
    try:
        import torch
        from transformers import AutoConfig, AutoModelForImageTextToText

        from gaspprobe.models.registry import adapter_class

        config = AutoConfig.from_pretrained(src)
        cls = adapter_class(getattr(config, "model_type", None))
        with torch.device("meta"):
            skeleton = AutoModelForImageTextToText.from_config(config)
        shell = cls.__new__(cls)
        shell.model = skeleton
        modes = set(shell.capture_modes())
    except Exception:  # undecidable here: the loader and the post-load check say what is wrong
        return
    for n in needs:
        cm = SOURCES.get(n).capture_mode
        if cm not in modes:
            raise ModelError(f"modes: feature source {n!r} needs capture mode {cm!r}, which {src} "
                             f"cannot hook (it has: {', '.join(sorted(modes))})")
