"""The probe runner: ``probe(model, scenes, recipe) -> ProbeResult`` (what ``gaspprobe probe`` calls).

For each scene (in order): take the clip (frames 0, s, 2s, ... up to ``frames_per_clip``), get the
model's token grid, sample frame pairs per gap (:mod:`~gaspprobe.probing.temporal`), compute the GT
patch matches for all pairs (:func:`gaspprobe.scenes.patch_matches_many`) and each token's patch
depth, then run ONE forward pass per feature source that needs one
(:mod:`~gaspprobe.probing.features`) and, as each layer's capture arrives, match every GT source
token against all of the target frame's tokens (:mod:`~gaspprobe.probing.match`), accumulate hit
counts per gap and tolerance (in patches: ``patch_unit``), confidences for the Spearman
correlation, and the depth probe's ridge statistics (:mod:`~gaspprobe.probing.depth`); the layer is
then dropped. Oracle sources are matched on the same grid without a forward pass.

Aggregation (the numbers people cite come from :mod:`gaspprobe.tables`, one implementation each):
accuracies are **micro averages** over GT matches (pooled over pairs, gaps and scenes);
``peak_layer`` is the LLM layer with the highest accuracy at the recipe's ``headline_r`` for the
primary source (``hidden`` when it ran); the ``vision`` layer is reported beside it. Robustness,
the normalized PCK per layer and the gap-balanced mean are computed at that tolerance (definitions
in :mod:`gaspprobe.tables`). The depth probe is fitted on the first ``depth_train_fraction`` of the
scenes and scored on the rest. Under ``torchrun`` / ``accelerate launch`` scenes are sharded over
the processes and gathered (:mod:`~gaspprobe.probing.shard`); ``probe_many`` runs several models
into one comparison run.

Table (``probe.parquet`` + ``probe.csv``, schema :data:`gaspprobe.tables.PROBE`): tidy rows
``model, scene, layer, gap, metric, value, n, patch_unit``. A null ``scene`` means pooled over all
scenes, a null ``gap`` pooled over gaps (or not applicable), a null ``layer`` a model-independent
row (``chance``). ``value`` is NaN exactly when ``n`` is 0 (no data, never a fake number). Metrics:
``{source}/acc_r{r}`` (n = GT matches), ``{source}/conf_spearman`` (n = matches), ``depth/absrel``
and ``depth/delta1`` (n = held-out tokens), ``chance`` and ``chance_r{r}`` (the accuracy a
uniformly random guess would get on the same matches; n = matches). Run folders go through the
run kernel (:func:`gaspprobe.runs.open_run`).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gaspprobe import io, tables
from gaspprobe.errors import ConfigError, DataError, ModelError
from gaspprobe.probing.depth import RidgeStats, depth_scores, predict_depth, valid_tokens
from gaspprobe.probing.match import chance_within, hits_within, match_tokens, spearman
from gaspprobe.probing.recipe import Recipe, effective_video_fps, load_recipe
from gaspprobe.probing.features import SOURCES, check_adapter_supports, oracle_features, preflight
from gaspprobe.probing.metrics import patch_tokens
from gaspprobe.probing.shard import shard_info
from gaspprobe.probing.temporal import sample_pairs

COLUMNS = ["model", "scene", "layer", "gap", "metric", "value", "n"]


@dataclass
class ProbeResult:
    """A probe run's results: the tidy ``table`` (pandas DataFrame), the ``summary`` dict (the
    content of ``summary.json``), the run folder ``out`` (None when not written), the resolved
    ``recipe``, and ``cached`` (True when an existing complete run was returned as it was)."""

    table: Any
    summary: dict
    recipe: Recipe
    out: Path | None = None
    cached: bool = False
    figures: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- resolving inputs
def resolve_model(model: Any, recipe: Recipe, *, device: str = "cpu", dtype: str = "auto") -> tuple[Any, str]:
    """(adapter, model string for the tables) from a hub id / dir / ``oracle:...`` / adapter."""
    if isinstance(model, (str, Path)):
        s = str(model)
        if s.startswith("oracle:"):
            from gaspprobe.probing.oracle import make_oracle

            return make_oracle(s, seed=recipe.seed), s
        from gaspprobe import models

        return models.load(s, dtype=dtype, device=device, pixels=recipe_pixels(recipe)), s
    if not hasattr(model, "capture") or not hasattr(model, "token_grid"):
        raise ModelError(f"model: expected a model id, a folder, 'oracle:xyz'/'oracle:random' or a "
                         f"loaded adapter, got {type(model).__name__}")
    return model, str(getattr(model, "model_id", type(model).__name__))


def recipe_pixels(recipe: Any) -> dict | None:
    """The processor pixel budget a recipe / config asks for (``min_pixels``, ``max_pixels``), or None."""
    px = {k: getattr(recipe, k, None) for k in ("min_pixels", "max_pixels")}
    px = {k: v for k, v in px.items() if v is not None}
    return px or None


def describe_scenes(scenes: Any) -> Any:
    """What the manifest records about ``scenes`` (cheap: a folder is not loaded): for a folder,
    its resolved path plus its scenes manifest (config and creation time, so a regenerated set is
    a different set) or, without one, its sorted entries; for Scene objects, their names."""
    from gaspprobe.scenes.types import Scene

    if isinstance(scenes, (str, Path)):
        p = Path(scenes)
        desc: dict = {"path": str(p.resolve())}
        m = p / io.MANIFEST
        if m.is_file():
            try:
                sm = io.read_json(m)
                desc["manifest"] = {k: sm.get(k) for k in ("kind", "config", "created", "scenes")}
            except DataError:
                pass
        elif p.is_dir():
            desc["entries"] = sorted(e.name for e in p.iterdir() if not e.name.startswith("."))
        return desc
    if isinstance(scenes, Scene):
        return [scenes.name]
    try:
        return [s.name for s in scenes]
    except (TypeError, AttributeError):
        return None


def resolve_scenes(scenes: Any) -> list:
    """The list of Scene from a folder (or folder of scene folders), a Scene or a list."""
    from gaspprobe.scenes.types import Scene

    if isinstance(scenes, (str, Path)):
        from gaspprobe.scenes import load_scenes

        lst = load_scenes(scenes)
    elif isinstance(scenes, Scene):
        lst = [scenes]
    else:
        lst = list(scenes)
        if not all(isinstance(s, Scene) for s in lst):
            raise DataError("scenes: expected a folder, a Scene or a list of Scene")
    if not lst:
        raise DataError("no scenes to probe", path=scenes if isinstance(scenes, (str, Path)) else None)
    names = [s.name for s in lst]
    if len(set(names)) != len(names):
        raise DataError(f"scenes: names must be unique, got {names}")
    return lst


def attention_scale(adapter: Any) -> float:
    """The factor turning captured ``query . key`` into the model's head-averaged attention logit:
    ``1 / (H * sqrt(dh))`` (see :class:`gaspprobe.models.adapter.LayerCapture`); an adapter may
    state it as ``adapter.attention_scale``, otherwise it is read from the model config."""
    s = getattr(adapter, "attention_scale", None)
    if s is not None:
        return float(s() if callable(s) else s)
    cfg = getattr(getattr(adapter, "model", None), "config", None)
    cfg = getattr(cfg, "text_config", None) or cfg
    H = getattr(cfg, "num_attention_heads", None)
    if not H:
        raise ModelError(f"{getattr(adapter, 'model_id', 'model')}: cannot tell the attention "
                         "scale (no adapter.attention_scale and no num_attention_heads in its config)")
    dh = getattr(cfg, "head_dim", None) or cfg.hidden_size // H
    return 1.0 / (H * math.sqrt(dh))


# --------------------------------------------------------------------------- accumulation
class _Acc:
    """Hit counts per (mode, scene, layer) over gaps and tolerances, confidences, depth scores."""

    def __init__(self, recipe: Recipe):
        self.r = recipe
        self.gaps = list(recipe.gaps)
        self.n: dict[tuple, torch.Tensor] = {}       # (mode, scene, layer) -> long [G]
        self.hits: dict[tuple, torch.Tensor] = {}    # (mode, scene, layer, r) -> long [G]
        self.conf: dict[tuple, list] = {}            # (mode, scene, layer) -> [(conf, correct)]
        self.chance: dict[tuple, torch.Tensor] = {}  # (scene, r) -> float64 [G] (sum of per-match chance)
        self.gt_n: dict[str, torch.Tensor] = {}      # scene -> long [G] GT matches
        self.layers: list[str] = []
        self.modes_seen: list[str] = []
        self.depth: dict[tuple, tuple[float, float, int]] = {}  # (scene, layer) -> (sum absrel, sum d1, n)
        self.n_pairs = 0
        self.scale = 1  # vision patches per token side (patch_unit "vision_patch"); 1 = LLM tokens

    def add_layer(self, mode, scene, layer, m, gap_idx, cols):
        G = len(self.gaps)
        if layer not in self.layers:
            self.layers.append(layer)
        if mode not in self.modes_seen:
            self.modes_seen.append(mode)
        gi = gap_idx[m.pair] if len(m) else torch.zeros(0, dtype=torch.long)
        self.n[(mode, scene, layer)] = torch.bincount(gi, minlength=G)
        for r in self.r.tolerances:
            h = hits_within(m.pred, m.gt, cols, patch_tokens(r, self.scale))
            self.hits[(mode, scene, layer, r)] = torch.bincount(gi, weights=h.double(), minlength=G).round().long()
        # confidence vs correctness at the headline tolerance (r = 0: the exact token)
        ok = hits_within(m.pred, m.gt, cols, patch_tokens(self.r.headline_r, self.scale))
        self.conf[(mode, scene, layer)] = [(m.conf, ok.double())]


def _nan_if_zero(num: float, n: int) -> float:
    return num / n if n > 0 else float("nan")


# --------------------------------------------------------------------------- the runner
def clip_indices(n_frames: int, rcp: Recipe) -> list[int]:
    """The scene frames that form the clip: every ``frame_stride``-th, at most ``frames_per_clip``."""
    return list(range(0, n_frames, rcp.frame_stride))[:rcp.frames_per_clip]


def check_gaps(scene_list: list, rcp: Recipe) -> None:
    """With ``skip_long_gaps = false``: every scene's clip must hold the largest Δt (one line
    naming the setting and the first short scene), checked before the model loads."""
    if rcp.skip_long_gaps:
        return
    need = max(rcp.gaps) + 1
    for s in scene_list:
        F = len(clip_indices(s.num_frames, rcp))
        if F < need:
            raise ConfigError(f"gaps: Δt up to {max(rcp.gaps)} needs clips of {need} frames; scene "
                              f"{s.name} gives {F} ({s.num_frames} frames, frame_stride "
                              f"{rcp.frame_stride}, frames_per_clip {rcp.frames_per_clip})")


def patch_scale(adapter: Any, rcp: Recipe) -> int:
    """Vision patches per LLM token side under the recipe's ``patch_unit`` (1 for ``llm_token``;
    the family's ``merge_size`` for ``vision_patch``)."""
    if rcp.patch_unit == "llm_token":
        return 1
    spec = getattr(adapter, "spec", None)
    return int(getattr(spec, "merge_size", 1) or 1)


def probe(model: Any, scenes: Any, recipe: "Recipe | str | Path | None" = None, *,
          out: "str | Path | None" = None, progress: Any = False, overwrite: bool = False,
          device: str = "cpu", dtype: str = "auto", label: str | None = None,
          **overrides: Any) -> ProbeResult:
    """Probe ``model`` on ``scenes`` layer by layer.

    Args:
        model: a hub id or model folder (loaded with :func:`gaspprobe.models.load`),
            ``"oracle:xyz"`` / ``"oracle:random"`` (optionally ``":ROWSxCOLS"``), or a loaded adapter.
        scenes: a scene folder / folder of scene folders, a :class:`Scene`, or a list of them.
        recipe: a :class:`Recipe`, a recipe file, a recipe name under ``gaspprobe/probing/recipes/``
            ("gasp", "paper", "quick"), or None (the defaults = ``gasp``).
        out: run folder (``probe.parquet``/``.csv``, ``summary.json``, ``manifest.json``, figures),
            opened through the run kernel (:func:`gaspprobe.runs.open_run`, kind ``probe``, staged;
            identity = recipe, model, scenes, dtype). A complete identical run is returned without
            recomputing (``cached=True``); a differing one is refused naming the keys.
        progress: a callback ``progress(done, total)`` after each scene, or True for a rich bar.
        overwrite: replace a complete run in ``out`` made with a different model/scenes/recipe.
        device, dtype: where and in which precision a model given by name is loaded
            (:func:`gaspprobe.models.load`); matching and the depth statistics run on the device
            of the captured features. Recorded in the manifest, not part of the recipe.
        label: written as the manifest's ``model_label`` (the loop passes "base"/"gasp").
        **overrides: recipe keys (e.g. ``gaps=[1, 4]``, ``modes=["hidden"]``).

    Returns:
        :class:`ProbeResult` with ``.table`` and ``.summary`` (see the module docstring).
    """
    rcp = load_recipe(recipe, **overrides)
    model_str = str(model) if isinstance(model, (str, Path)) else str(
        getattr(model, "model_id", type(model).__name__))
    scenes_desc = describe_scenes(scenes)
    if out is None:
        return _run(model, scenes, rcp, progress=progress, device=device, dtype=dtype)
    from gaspprobe.runs import open_run

    out = Path(out)
    rank, world = shard_info()
    if world > 1:
        return _probe_sharded_out(model, scenes, rcp, out, model_str, scenes_desc, progress=progress,
                                  overwrite=overwrite, device=device, dtype=dtype, label=label, rank=rank)
    with open_run(out, "probe", rcp, publish="staged", seed=rcp.seed, label=label,
                  identity={"model": model_str, "scenes": scenes_desc, "dtype": dtype},
                  on_change="replace" if overwrite else "refuse") as run:
        if run.cached:  # a complete identical run: returned before loading scenes or model
            return load_result(out)
        res = _run(model, scenes, rcp, progress=progress, device=device, dtype=dtype)
        write_result(res, run.dir)
        run.complete(device=device, patch_unit=rcp.patch_unit, tables=tables.schema_versions("probe"))
        res.out = out
        res.figures = [out / p.name for p in res.figures]
    return res


def _probe_sharded_out(model, scenes, rcp, out, model_str, scenes_desc, *, progress, overwrite, device,
                       dtype, label, rank) -> ProbeResult:
    """Under a launcher: rank 0 opens (and holds) the run folder and tells the others whether it
    is cached; all ranks compute their shards; rank 0 writes; the others read the result back."""
    from gaspprobe.probing import shard
    from gaspprobe.runs import open_run

    dist = shard.ensure_dist(device)
    if rank != 0:
        decided = shard.gather(None)[0]
        if isinstance(decided, str):  # rank 0 was refused: the same one line here, no hang
            raise DataError(decided)
        if not decided:
            _run(model, scenes, rcp, progress=False, device=device, dtype=dtype)
            dist.barrier()
        return load_result(out)
    try:
        run = open_run(out, "probe", rcp, publish="staged", seed=rcp.seed, label=label,
                       identity={"model": model_str, "scenes": scenes_desc, "dtype": dtype},
                       on_change="replace" if overwrite else "refuse")
    except DataError as e:
        shard.gather(str(e))
        raise
    with run:
        shard.gather(run.cached)
        if run.cached:
            return load_result(out)
        res = _run(model, scenes, rcp, progress=progress, device=device, dtype=dtype)
        write_result(res, run.dir)
        run.complete(device=device, patch_unit=rcp.patch_unit, tables=tables.schema_versions("probe"),
                     world_size=dist.get_world_size())
    dist.barrier()
    res.out = out
    res.figures = [out / p.name for p in res.figures]
    return res


def write_result(res: ProbeResult, d: Path) -> None:
    """The table (versioned schema), summary.json and figures of ``res`` into folder ``d``."""
    tables.write_table(res.table, d / "probe.parquet", tables.PROBE, patch_unit=res.recipe.patch_unit,
                       meta={"patch_unit": res.recipe.patch_unit, "headline_r": res.recipe.headline_r})
    io.atomic_write_json(d / "summary.json", res.summary)
    from gaspprobe.probing.plots import write_figures

    res.figures = write_figures(res.summary, d)


def _run(model: Any, scenes: Any, rcp: Recipe, *, progress: Any, device: str, dtype: str) -> ProbeResult:
    scene_list = resolve_scenes(scenes)
    check_gaps(scene_list, rcp)
    preflight(model, rcp.modes)  # q/k/v a family cannot hook: refused before the weights load
    adapter, model_str = resolve_model(model, rcp, device=device, dtype=dtype)
    if rcp.layers is not None:
        known = list(adapter.layer_names())
        bad = [l for l in rcp.layers if l not in known]
        if bad or not rcp.layers:
            raise ConfigError(f"layers: unknown {bad or rcp.layers} for {model_str}; known: {', '.join(known)}")
    check_adapter_supports(adapter, rcp.modes, model_str)
    if rcp.modality != "images":
        if not hasattr(adapter, "check_modality"):
            raise ConfigError(f"modality: {model_str} takes images only")
        adapter.check_modality(rcp.modality)
    acc = _Acc(rcp)
    acc.scale = patch_scale(adapter, rcp)
    n_sc = len(scene_list)
    do_depth = rcp.depth_probe and "hidden" in rcp.modes and n_sc >= 2
    n_train = min(max(int(round(rcp.depth_train_fraction * n_sc)), 1), n_sc - 1) if do_depth else 0
    stats: dict[str, RidgeStats] = {}
    weights: dict[str, Any] = {}
    scale = None

    rank, world = shard_info()
    if world > 1:
        return _run_sharded(adapter, model_str, scene_list, rcp, acc, do_depth, n_train, scale, rank, world)
    bar = _progress(True, n_sc) if progress is True else None
    try:
        for si, scene in enumerate(scene_list):
            if do_depth and si == n_train:  # all training scenes seen: fit, then drop the statistics
                weights = {k: s.solve(rcp.ridge_lambda) for k, s in stats.items()}
                stats = {}
            if "attention" in rcp.modes and scale is None:
                scale = attention_scale(adapter)
            _probe_scene(adapter, scene, rcp, acc, depth_role=("train" if si < n_train else "test") if do_depth else None,
                         stats=stats, weights=weights, scale=scale)
            if bar is not None:
                bar[0].advance(bar[1])
            elif callable(progress):
                progress(si + 1, n_sc)
    finally:
        if bar is not None:
            bar[0].stop()

    names = [s.name for s in scene_list]
    table = _table(acc, model_str, names, rcp.patch_unit)
    summary = _summary(acc, table, model_str, rcp, n_sc, do_depth, n_train, names,
                       non_metric=[sc.name for sc in scene_list if not getattr(sc, "metric", True)])
    return ProbeResult(table=table, summary=summary, recipe=rcp, out=None)


def _run_sharded(adapter, model_str, scene_list, rcp, acc, do_depth, n_train, scale, rank, world) -> ProbeResult:
    """This rank's scenes (i % world == rank); training scenes of the depth probe first, their
    statistics gathered and fitted before held-out scenes; accumulators gathered at the end."""
    from gaspprobe.probing import shard

    n_sc = len(scene_list)
    phases = [range(0, n_train), range(n_train, n_sc)] if do_depth else [range(n_sc)]
    weights: dict = {}
    if "attention" in rcp.modes:
        scale = attention_scale(adapter)
    for ph, idx in enumerate(phases):
        local: dict[int, dict] = {}
        for si in idx:
            if si % world != rank:
                continue
            role = ("train" if si < n_train else "test") if do_depth else None
            stats: dict = {}
            _probe_scene(adapter, scene_list[si], rcp, acc, depth_role=role, stats=stats, weights=weights,
                         scale=scale)
            if role == "train":
                local[si] = {k: shard.ridge_state(v) for k, v in stats.items() if v.n > 0}
        if do_depth and ph == 0:
            per_scene = {si: st for part in shard.gather(local) for si, st in part.items()}
            layers = list(dict.fromkeys(k for si in sorted(per_scene) for k in per_scene[si]))
            weights = {k: shard.merge_ridge([per_scene[si][k] for si in sorted(per_scene) if k in per_scene[si]]
                                            ).solve(rcp.ridge_lambda) for k in layers}
    merged = shard.merge_acc(_Acc(rcp), shard.gather(shard.acc_state(acc)))
    names = [s.name for s in scene_list]
    table = _table(merged, model_str, names, rcp.patch_unit)
    summary = _summary(merged, table, model_str, rcp, n_sc, do_depth, n_train, names,
                       non_metric=[sc.name for sc in scene_list if not getattr(sc, "metric", True)])
    return ProbeResult(table=table, summary=summary, recipe=rcp, out=None)


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    p = Progress(TextColumn("probing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                 transient=False)
    p.start()
    return p, p.add_task("scenes", total=total)


def _probe_scene(adapter, scene, rcp: Recipe, acc: _Acc, *, depth_role, stats, weights, scale) -> None:
    from gaspprobe.scenes import patch_depth, patch_matches_many

    idx = clip_indices(scene.num_frames, rcp)
    F = len(idx)
    clip = scene if idx == list(range(scene.num_frames)) else scene.subset(idx)
    seed = (rcp.seed * 1000003) ^ zlib.crc32(scene.name.encode())
    gaps = acc.gaps
    G = len(gaps)
    video = rcp.modality == "video"
    st: dict = {}

    def setup(grid) -> None:
        """Pairs, GT for all of them on the forward pass's own grid (read from the first capture,
        so the processor does not run twice), chance, and patch depth for the depth probe.

        Video input: grid frame t is a temporal token slice; its GT camera and depth are those of
        its anchor frame (the first it covers), and Δt is counted between anchors in clip frames."""
        st["grid"] = grid
        covers = grid.extra.get("frames") if video else None
        anchors = covers[:, 0].tolist() if covers is not None else None
        gt_clip = clip if anchors is None or anchors == list(range(F)) else clip.subset(anchors)
        st["clip"] = gt_clip
        pairs = sample_pairs(grid.shape[0], rcp.gaps, rcp.pairs_per_gap, seed=seed,
                             both_directions=rcp.both_directions, positions=anchors)
        acc.n_pairs += len(pairs)
        pair_t = torch.tensor([[i, j] for i, j, _ in pairs], dtype=torch.long).reshape(-1, 2)
        gap_idx = torch.tensor([gaps.index(g) for _, _, g in pairs], dtype=torch.long)
        st["pair_t"], st["gap_idx"] = pair_t, gap_idx
        # all pairs at once: per-frame work (centre depths, world points, box index) is shared
        gts = (patch_matches_many(gt_clip, pair_t, grid, depth_tol=rcp.depth_tol, patch_depths=False)
               if pairs else [])
        st["src"] = [m.src.long() for m in gts]
        st["tgt"] = [m.tgt.long() for m in gts]
        sizes = torch.tensor([int(x.numel()) for x in st["src"]], dtype=torch.long)
        per_match_gap = torch.repeat_interleave(gap_idx, sizes) if pairs else torch.zeros(0, dtype=torch.long)
        acc.gt_n[scene.name] = torch.bincount(per_match_gap, minlength=G)
        gt_all = torch.cat(st["tgt"]) if st["tgt"] else torch.zeros(0, dtype=torch.long)
        for r in rcp.tolerances:
            ch = chance_within(gt_all, grid.rows, grid.cols, patch_tokens(r, acc.scale)).double()
            acc.chance[(scene.name, r)] = torch.zeros(G, dtype=torch.float64).index_add_(0, per_match_gap, ch)
        st["depth"] = patch_depth(gt_clip, grid) if depth_role else None

    mkw = {"modality": "video"} if video else {}
    if video:
        adapter.video_fps = effective_video_fps(rcp)
    if hasattr(adapter, "set_scene"):
        adapter.set_scene(clip)
    seen_layers: list[str] = []
    for mode in rcp.modes:
        src = SOURCES.get(mode)
        if src.capture_mode is None:
            continue  # oracle sources: after the model's sources, on the grid they used
        first = True
        layers = rcp.layers
        if mode != "hidden" and layers is not None:
            layers = [l for l in layers if l != "vision"]  # the projector output has no attention
            if not layers:
                continue
        for cap in adapter.capture(clip.rgb, mode=src.capture_mode, layers=layers, per_frame=rcp.per_frame, **mkw):
            if first:
                lg = getattr(adapter, "last_grid", None)
                if "grid" not in st:
                    setup(lg if lg is not None else adapter.token_grid(clip.size, F, **mkw))
                elif lg is not None:
                    _check_grid(adapter, st["grid"])  # every mode must see the same tokens
                first = False
            grid, src_idx, tgt_idx, depth = st["grid"], st["src"], st["tgt"], st["depth"]
            pair_t, gap_idx = st["pair_t"], st["gap_idx"]
            Fg, rows, cols = grid.shape
            pair = src.tensors(cap)
            if pair is None:
                if mode == "hidden":
                    raise ModelError(f"{cap.name}: hidden-mode capture has no feats")
                continue  # e.g. the vision layer has no self-attention of its own
            a = _check_shape(pair[0], Fg, rows, cols, cap.name)
            b = a if pair[1] is pair[0] else _check_shape(pair[1], Fg, rows, cols, cap.name)
            if src.pair:
                m = match_tokens(a, b, pair_t, src_idx, tgt_idx, cosine=False, logit_scale=scale,
                                 temperature=1.0)
            else:
                m = match_tokens(a, b, pair_t, src_idx, tgt_idx, cosine=True,
                                 temperature=rcp.conf_temperature)
            if mode == "hidden" and depth_role is not None:
                _depth_layer(cap.name, a, depth, depth_role, stats, weights, acc, scene.name,
                             metric=bool(getattr(scene, "metric", True)))
            acc.add_layer(mode, scene.name, cap.name, m, gap_idx, cols)
            if cap.name not in seen_layers:
                seen_layers.append(cap.name)
            del cap, a, b
    if "grid" not in st:  # no layer came back (or oracle sources only): the grid without a forward
        setup(adapter.token_grid(clip.size, F, **mkw))
    oracles = [SOURCES.get(m) for m in rcp.modes if SOURCES.get(m).oracle is not None]
    if oracles:
        grid = st["grid"]
        names = seen_layers or list(rcp.layers or adapter.layer_names())
        for o in oracles:
            f = oracle_features(o.oracle, st["clip"], grid, seed=rcp.seed).to(torch.float32)
            m = match_tokens(f, f, st["pair_t"], st["src"], st["tgt"], cosine=True,
                             temperature=rcp.conf_temperature)
            for name in names:  # model-independent: the same matches on every layer row
                acc.add_layer(o.name, scene.name, name, m, st["gap_idx"], grid.cols)


def _depth_layer(name, feats, depth, role, stats, weights, acc, scene_name, *, metric: bool = True) -> None:
    """Ridge statistics (training scenes) or held-out depth scores (test scenes) of one layer.

    A scene whose depth is not metric (``Scene.metric`` False: known up to a per-scene scale) is
    fitted on its mean-centred log depth and scored after median scaling (scale-invariant), so the
    probe never reads an arbitrary scale as metres; the summary marks such runs."""
    from gaspprobe.probing.depth import median_align, scale_invariant_target

    x, d = valid_tokens(feats, depth)
    if role == "train":
        if name not in stats:
            stats[name] = RidgeStats(x.shape[-1])
        elif stats[name].dim != x.shape[-1]:
            raise ModelError(f"{name}: feature width {x.shape[-1]} differs between "
                             f"scenes ({stats[name].dim} before)")
        stats[name].update(x, torch.log(d) if metric else scale_invariant_target(d))
        return
    wb = weights.get(name)
    if wb is not None and wb[0].numel() != x.shape[-1]:
        raise ModelError(f"{name}: feature width {x.shape[-1]} differs from the "
                         f"training scenes' {wb[0].numel()}")
    if wb is not None and d.numel():
        pred = predict_depth(x, *wb)
        sc = depth_scores(pred if metric else median_align(pred, d), d)
        acc.depth[(scene_name, name)] = (sc.absrel * sc.n, sc.delta1 * sc.n, sc.n)
    else:
        acc.depth[(scene_name, name)] = (0.0, 0.0, 0)


def _check_grid(adapter, grid) -> None:
    lg = getattr(adapter, "last_grid", None)
    if lg is None:
        return
    if lg.shape != grid.shape or not torch.allclose(lg.boxes.float(), grid.boxes.float(), atol=1e-3):
        raise ModelError(f"{getattr(adapter, 'model_id', 'model')}: token_grid() {grid.shape} disagrees "
                         f"with the grid of the forward pass {lg.shape}")


def _check_shape(t: torch.Tensor, F: int, rows: int, cols: int, name: str) -> torch.Tensor:
    if t.ndim != 4 or tuple(t.shape[:3]) != (F, rows, cols):
        raise ModelError(f"{name}: expected a capture of shape [{F},{rows},{cols},D], got {tuple(t.shape)}")
    return t.detach().float()


# --------------------------------------------------------------------------- tables and summary
def _table(acc: _Acc, model_str: str, scene_names: list[str], patch_unit: str = "llm_token"):
    import pandas as pd

    rows: list[tuple] = []
    gaps = acc.gaps
    add = lambda scene, layer, gap, metric, num, n: rows.append(  # noqa: E731
        (model_str, scene, layer, gap, metric, _nan_if_zero(num, n), int(n)))
    val = lambda scene, layer, gap, metric, v, n: rows.append(  # noqa: E731
        (model_str, scene, layer, gap, metric, float(v) if n > 0 else float("nan"), int(n) if n > 0 else 0))

    # chance (model-independent): per scene and pooled, per gap and pooled
    for r in acc.r.tolerances:
        metric = "chance" if r == 0 else f"chance_r{r}"
        tot_c = torch.zeros(len(gaps), dtype=torch.float64)
        tot_n = torch.zeros(len(gaps), dtype=torch.long)
        for s in scene_names:
            c, n = acc.chance[(s, r)], acc.gt_n[s]
            tot_c += c
            tot_n += n
            add(s, None, None, metric, float(c.sum()), int(n.sum()))
        add(None, None, None, metric, float(tot_c.sum()), int(tot_n.sum()))
    for mode in acc.modes_seen:
        for layer in acc.layers:
            keys = [(mode, s, layer) for s in scene_names if (mode, s, layer) in acc.n]
            if not keys:
                continue
            for r in acc.r.tolerances:
                metric = f"{mode}/acc_r{r}"
                tot_h = torch.zeros(len(gaps), dtype=torch.long)
                tot_n = torch.zeros(len(gaps), dtype=torch.long)
                for k in keys:
                    h, n = acc.hits[(*k, r)], acc.n[k]
                    tot_h += h
                    tot_n += n
                    for gi, g in enumerate(gaps):
                        add(k[1], layer, g, metric, int(h[gi]), int(n[gi]))
                    add(k[1], layer, None, metric, int(h.sum()), int(n.sum()))
                for gi, g in enumerate(gaps):
                    add(None, layer, g, metric, int(tot_h[gi]), int(tot_n[gi]))
                add(None, layer, None, metric, int(tot_h.sum()), int(tot_n.sum()))
            confs, corrs = [], []
            for k in keys:
                c = torch.cat([a for a, _ in acc.conf[k]]) if acc.conf[k] else torch.zeros(0)
                y = torch.cat([b for _, b in acc.conf[k]]) if acc.conf[k] else torch.zeros(0)
                rho, n = spearman(c, y)
                val(k[1], layer, None, f"{mode}/conf_spearman", rho, n)
                confs.append(c)
                corrs.append(y)
            rho, n = spearman(torch.cat(confs), torch.cat(corrs))
            val(None, layer, None, f"{mode}/conf_spearman", rho, n)
    # depth probe: per held-out scene and pooled
    for layer in acc.layers:
        keys = [(s, layer) for s in scene_names if (s, layer) in acc.depth]
        if not keys:
            continue
        ta = td = 0.0
        tn = 0
        for s, _ in keys:
            a, d, n = acc.depth[(s, layer)]
            ta, td, tn = ta + a, td + d, tn + n
            add(s, layer, None, "depth/absrel", a, n)
            add(s, layer, None, "depth/delta1", d, n)
        add(None, layer, None, "depth/absrel", ta, tn)
        add(None, layer, None, "depth/delta1", td, tn)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["gap"] = df["gap"].astype("Int64")
    df["n"] = df["n"].astype("int64")
    df["value"] = df["value"].astype("float64")
    df["patch_unit"] = patch_unit  # the columns and dtypes of tables.PROBE, built directly (cheap)
    return df


def _pooled_index(table) -> dict:
    """{(metric, layer, gap): (value, n)} of the rows pooled over scenes (null scene)."""
    t = table[table.scene.isna()]
    idx = {}
    for m, l, g, v, n in zip(t.metric, t.layer, t.gap.astype(object), t.value, t.n):
        key_l = None if l is None or (isinstance(l, float) and l != l) else l
        key_g = None if g is None or g is pd_na() or (isinstance(g, float) and g != g) else int(g)
        idx[(m, key_l, key_g)] = (float(v), int(n))
    return idx


def pd_na():
    import pandas as pd

    return pd.NA


def _pooled(idx: dict, metric: str, layer=None, gap=None):
    """(value, n) pooled over scenes for (metric, layer, gap); (nan, 0) if absent."""
    return idx.get((metric, layer, None if gap is None else int(gap)), (float("nan"), 0))


def _chance_by_gap(acc: _Acc, r: int) -> dict[int, float]:
    """Chance at tolerance r per gap, pooled over scenes' matches (NaN for a gap without any)."""
    G = len(acc.gaps)
    c = torch.zeros(G, dtype=torch.float64)
    n = torch.zeros(G, dtype=torch.long)
    for s, tot in acc.gt_n.items():
        c += acc.chance[(s, r)]
        n += tot
    return {g: (float(c[i]) / int(n[i]) if int(n[i]) else float("nan")) for i, g in enumerate(acc.gaps)}


def _mode_block(acc: _Acc, idx: dict, mode: str) -> dict:
    """One feature source's headline: peak layer (on the headline tolerance), per-gap curve and
    normalized PCK at it, robustness, balanced mean; every number from :mod:`gaspprobe.tables`."""
    hr = acc.r.headline_r
    layers = [l for l in acc.layers if (f"{mode}/acc_r0", l, None) in idx]
    accuracy = {f"r{r}": {l: _pooled(idx, f"{mode}/acc_r{r}", l)[0] for l in layers}
                for r in acc.r.tolerances}
    head = accuracy[f"r{hr}"]
    peak = tables.peak_layer(head)
    llm = [l for l in layers if l.startswith("llm.")] or layers
    chance_by_gap = _chance_by_gap(acc, hr)

    def curve(layer):
        by_gap, n_by_gap = {}, {}
        for g in acc.gaps:
            v, n = _pooled(idx, f"{mode}/acc_r{hr}", layer, g)
            if n > 0:  # only the gaps the clips allowed and that had matches
                by_gap[g], n_by_gap[g] = v, n
        return by_gap, n_by_gap

    by_gap, n_by_gap = curve(peak) if peak is not None else ({}, {})
    rob = tables.robustness(by_gap, n_by_gap, chance_by_gap=chance_by_gap)
    balanced, _ = tables.gap_balanced_accuracy(by_gap, n_by_gap)
    normalized = {}
    for l in layers:
        b, n = curve(l)
        normalized[l] = {str(g): v for g, v in tables.normalized_curve(b, n).items()}
    llm_vals = [head[l] for l in llm if not math.isnan(head[l])]
    return {
        "layers": layers,
        "accuracy": accuracy,
        "peak_layer": peak,
        "peak_accuracy": head[peak] if peak is not None else float("nan"),
        "layer_mean_accuracy": sum(llm_vals) / len(llm_vals) if llm_vals else float("nan"),
        "vision_accuracy": head.get("vision", float("nan")),
        "gap_balanced_accuracy": balanced,
        "accuracy_by_gap": {str(g): v for g, v in by_gap.items()},
        "n_by_gap": {str(g): n for g, n in n_by_gap.items()},
        "robustness": rob.value,
        "robustness_ratios": {str(g): v for g, v in rob.ratios.items()},
        "robustness_at_max_gap": rob.at_max_gap,
        "robustness_max_gap": rob.max_gap,
        "robustness_reason": rob.reason,
        "normalized_by_layer": normalized,
        "confidence_spearman": {l: _pooled(idx, f"{mode}/conf_spearman", l)[0] for l in layers},
    }


def _summary(acc: _Acc, table, model_str: str, rcp: Recipe, n_sc: int, do_depth: bool,
             n_train: int, scene_names: list[str], non_metric: list[str] | None = None) -> dict:
    primary = "hidden" if "hidden" in acc.modes_seen else (acc.modes_seen[0] if acc.modes_seen else "hidden")
    idx = _pooled_index(table)  # the summary reads only pooled rows
    blocks = {m: _mode_block(acc, idx, m) for m in acc.modes_seen}
    main = blocks.get(primary) or {"layers": [], "accuracy": {f"r{r}": {} for r in rcp.tolerances},
                                   "peak_layer": None, "peak_accuracy": float("nan"),
                                   "layer_mean_accuracy": float("nan"), "accuracy_by_gap": {},
                                   "robustness": float("nan"), "confidence_spearman": {}}
    chance, n_matches = _pooled(idx, "chance")
    hr = rcp.headline_r
    out = {
        "model": model_str,
        "mode": primary,
        "layers": list(acc.layers),
        **{k: v for k, v in main.items() if k != "layers"},
        "chance": chance,
        **{f"chance_r{r}": _pooled(idx, f"chance_r{r}")[0] for r in rcp.tolerances if r > 0},
        "depth_probe": {},
        "n_pairs": acc.n_pairs,
        "n_matches": int(sum(int(n.sum()) for n in acc.gt_n.values())),
        "n_scenes": n_sc,
        "scenes": scene_names,
        "gaps": list(rcp.gaps),
        "tolerances": list(rcp.tolerances),
        "headline_r": hr,
        "headline_chance": chance if hr == 0 else _pooled(idx, f"chance_r{hr}")[0],
        "patch_unit": rcp.patch_unit,
        "patch_scale": acc.scale,
        "frame_stride": rcp.frame_stride,
        "fps": rcp.fps,
        "modality": rcp.modality,
        # video: the frame rate the model was told; Δt counts clip frames between slice anchors
        "video_fps": effective_video_fps(rcp) if rcp.modality == "video" else None,
        "schema_version": tables.PROBE.version,
    }
    if do_depth:
        non_metric = list(non_metric or [])
        # depth known only up to a per-scene scale somewhere: those scenes are fitted on centred log
        # depth and scored after median scaling, so AbsRel / delta1 measure RELATIVE depth there
        out["depth_metric"] = not non_metric
        out["depth_scale_invariant_scenes"] = non_metric
        out["depth_probe"] = {l: {"absrel": _pooled(idx, "depth/absrel", l)[0],
                                  "delta1": _pooled(idx, "depth/delta1", l)[0],
                                  "n": _pooled(idx, "depth/absrel", l)[1]}
                              for l in acc.layers if ("depth/absrel", l, None) in idx}
        out["depth_train_scenes"] = scene_names[:n_train]
        out["depth_test_scenes"] = scene_names[n_train:]
    for m, b in blocks.items():  # every other feature source under its own name
        if m != primary:
            out[m] = dict(b)
    # exactly what summary.json holds (NaN -> null), so a fresh and a cached result are equal
    return io.json.loads(io.json.dumps(io._finite(out), default=io._json_default, allow_nan=False))


def load_result(run_dir: "str | Path") -> ProbeResult:
    """Read a complete probe run folder back as a :class:`ProbeResult`."""
    run_dir = Path(run_dir)
    m = io.read_manifest(run_dir, kind="probe")
    if m.get("status") != "complete":
        raise DataError("probe run is not complete", path=run_dir)
    from gaspprobe import config as C

    rcp = C.from_dict(Recipe, m["config"], where=str(run_dir / io.MANIFEST))
    table = tables.read_table(run_dir / "probe.parquet", tables.PROBE)
    figs = sorted(p for p in run_dir.iterdir() if p.suffix in (".png", ".pdf"))
    return ProbeResult(table=table, summary=io.read_json(run_dir / "summary.json"), recipe=rcp,
                       out=run_dir, cached=True, figures=figs)


# --------------------------------------------------------------------------- several models
def _slug(text: str) -> str:
    import re

    s = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(text).rstrip("/")).name or str(text))
    return s.strip("._") or "model"


def probe_many(models: list, scenes: Any, recipe: "Recipe | str | Path | None" = None, *,
               out: "str | Path", labels: list[str] | None = None, progress: Any = False,
               overwrite: bool = False, device: str = "cpu", dtype: str = "auto",
               row_title: str | None = None, **overrides: Any) -> list[ProbeResult]:
    """Probe several models on the same scenes with the same recipe: one comparison run.

    ``out`` becomes a ``probe-set`` run (run kernel, incremental) holding one probe run per model
    in ``out/<label or model name>/`` (each cached on a rerun, so an interrupted comparison resumes
    model by model), ``comparison.parquet`` (all models' tables, schema ``tables.PROBE``) and the
    paper figure (``paper_figure.png`` / ``.pdf``). Report tools find the per-model runs inside.

    Args:
        models: model strings / folders / oracles / adapters (as for :func:`probe`).
        labels: one label per model (manifest ``model_label``, legend, folder name); default: the
            models' names.
        Other arguments as for :func:`probe`; the recipe overrides apply to every model.
    """
    import pandas as pd

    from gaspprobe.runs import open_run

    if not models:
        raise ConfigError("model: give at least one model")
    names = [str(m) if isinstance(m, (str, Path)) else str(getattr(m, "model_id", type(m).__name__)) for m in models]
    if labels is not None and len(labels) != len(models):
        raise ConfigError(f"label: {len(labels)} labels for {len(models)} models")
    labels = list(labels) if labels is not None else None
    folders = [_slug(l) for l in (labels or names)]
    if len(set(folders)) != len(folders):
        folders = [f"{i}-{f}" for i, f in enumerate(folders)]
    rcp = load_recipe(recipe, **overrides)
    out = Path(out)
    ident = {"models": names, "labels": labels, "scenes": describe_scenes(scenes), "dtype": dtype}
    results: list[ProbeResult] = []
    with open_run(out, "probe-set", rcp, publish="incremental", seed=rcp.seed, identity=ident,
                  on_change="replace" if overwrite else "refuse") as run:
        if run.cached:
            return [load_result(out / f) for f in folders]
        run.start(runs=folders)
        for m, f, lab in zip(models, folders, labels or [None] * len(models)):
            results.append(probe(m, scenes, rcp, out=out / f, progress=progress, overwrite=overwrite,
                                 device=device, dtype=dtype, label=lab))
        table = pd.concat([r.table for r in results], ignore_index=True)
        tables.write_table(table, out / "comparison.parquet", tables.PROBE, patch_unit=rcp.patch_unit)
        from gaspprobe.probing.plots import paper_figure

        pairs = [(lab or Path(n).name, r.summary) for lab, n, r in
                 zip(labels or [None] * len(models), names, results)]
        paper_figure({row_title or ", ".join(Path(n).name for n in names): pairs}, out)
        run.complete(runs=folders, tables=tables.schema_versions("probe"))
    return results
