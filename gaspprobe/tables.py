"""Tables and typed summaries: the ONE place that says what a result table holds and how the
numbers people cite are computed from it.

Start here if you write or read a result:

- **Schemas** (:data:`PROBE`, :data:`BENCH`, :data:`TRAIN_LOG`, :data:`VAL_LOG`): column names,
  dtypes and a version. :func:`write_table` writes parquet (+ CSV twin) atomically with the schema
  name and version in the parquet metadata (key ``gaspprobe.schema``); :func:`read_table` checks
  the columns, coerces dtypes and accepts tables written before schemas were versioned
  (``version`` 0: same required columns, no metadata). :func:`schema_versions` is what a producer
  records in its manifest (``tables``).
- **The three numbers**, each implemented once and used by the probe, training validation and the
  report (which reads them and never re-derives them):

  * :func:`pooled_accuracy`: the micro average ``sum(hits) / sum(n)`` over matches (NaN when n = 0);
    :func:`gap_balanced_accuracy` beside it: the mean over frame gaps of each gap's accuracy, so
    that gap 1 (most matches) does not dominate.
  * :func:`peak_layer`: the LLM layer (``llm.*``; all layers when the model has none) with the
    highest value; ties go to the earliest layer; NaN layers are skipped.
  * :func:`robustness`: at one layer, ``mean over gaps g > g_min of acc(g) / acc(g_min)`` (g_min the
    smallest gap with matches; the GASP paper's normalized PCK_Δt / PCK_1 averaged over Δt), with
    the ratio at the largest gap beside it (PCK_24 / PCK_1 in the paper recipe) and a reason when it
    is not defined: no larger gap, acc(g_min) = 0, or acc(g_min) within noise of chance (within
    :data:`NOISE_Z` binomial standard errors of chance: a ratio of two noise figures says nothing).
- **Typed summaries**: :class:`ProbeSummary` (``summary.json`` of a probe run, old and new),
  :class:`ValidationSummary` (training validation), :class:`BenchSummary`; each ``from_dict`` /
  ``to_dict``.

Pure Python + pandas/pyarrow; no torch import.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from gaspprobe.errors import DataError

META_KEY = b"gaspprobe.schema"

#: A base accuracy within this many binomial standard errors of chance (``sqrt(c (1 - c) / n)``)
#: makes robustness undefined: PCK_Δt / PCK_1 would be a ratio of noise.
NOISE_Z = 2.0


# --------------------------------------------------------------------------- schemas
@dataclass(frozen=True)
class Schema:
    """A versioned table schema.

    ``columns``: name -> pandas dtype string, in column order. ``required``: the columns a table
    must have to be read (older versions may lack the rest; they are filled with ``defaults``).
    Bump ``version`` whenever a column is added, removed or changes meaning."""

    name: str
    version: int
    columns: tuple[tuple[str, str], ...]
    required: tuple[str, ...]
    defaults: tuple[tuple[str, Any], ...] = ()
    doc: str = ""

    @property
    def names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def dtype(self, col: str) -> str:
        return dict(self.columns)[col]


PROBE = Schema(
    "probe", 2,
    columns=(("model", "object"), ("scene", "object"), ("layer", "object"), ("gap", "Int64"),
             ("metric", "object"), ("value", "float64"), ("n", "int64"), ("patch_unit", "object")),
    required=("model", "scene", "layer", "gap", "metric", "value", "n"),
    defaults=(("patch_unit", "llm_token"),),
    doc="one row per (model, scene, layer, gap, metric); null scene = pooled over scenes, null gap = "
        "pooled over gaps, null layer = model-independent (chance). value is NaN exactly when n = 0. "
        "gap = Δt in clip frames; patch_unit = what one 'patch' of a tolerance r is "
        "('llm_token' | 'vision_patch'). v1 had no patch_unit (always llm_token).")

BENCH = Schema(
    "bench", 1,
    columns=(("model", "object"), ("benchmark", "object"), ("id", "object"), ("question_type", "object"),
             ("prediction", "object"), ("parsed", "object"), ("target", "object"), ("score", "float64"),
             ("task", "object"), ("failed", "object")),
    required=("model", "benchmark", "id", "question_type", "prediction", "parsed", "target", "score"),
    defaults=(("task", None), ("failed", "")),
    doc="one row per scored sample; score in [0, 1] (MRA or exact match); failed = the error of a "
        "sample whose generation failed ('' otherwise).")

TRAIN_LOG = Schema(
    "train_log", 1,
    columns=(("step", "int64"), ("loss", "float64")),
    required=("step", "loss"),
    doc="one row per optimizer step: step, loss, then any loss parts (loss_corr, loss_depth, "
        "loss_lm, llm.K/contrastive ...), lr, time; extra float columns are kept as they are.")

VAL_LOG = Schema(
    "val_log", 1,
    columns=(("step", "int64"), ("layer", "object"), ("gap", "int64"), ("acc_r0", "float64"),
             ("n", "int64")),
    required=("step", "layer", "gap", "acc_r0", "n"),
    doc="one row per (step, layer, gap): raw hidden-state r=0 accuracy on validation scenes; gap 0 = "
        "pooled over gaps; layer 'summary' / gap -1 rows carry peak_layer and robustness.")

SCHEMAS: dict[str, Schema] = {s.name: s for s in (PROBE, BENCH, TRAIN_LOG, VAL_LOG)}


def schema_versions(*names: str) -> dict[str, int]:
    """``{table: version}`` for a manifest's ``tables`` key (all schemas when none named)."""
    return {n: SCHEMAS[n].version for n in (names or SCHEMAS)}


def conform(df, schema: Schema, **constants: Any):
    """``df`` with the schema's columns first (missing optional ones filled from ``constants`` or
    the schema defaults), dtypes coerced; extra columns kept after them. Raises DataError naming
    the missing required columns."""
    import pandas as pd

    df = df.copy()
    missing = [c for c in schema.required if c not in df.columns]
    if missing:
        raise DataError(f"{schema.name} table lacks columns {missing}")
    defaults = {**dict(schema.defaults), **constants}
    for c, _ in schema.columns:
        if c not in df.columns:
            df[c] = defaults.get(c)
    for c, dt in schema.columns:
        if dt == "object":
            continue  # text: pandas' own string dtype, as parquet gives it back
        if dt == "Int64":
            df[c] = pd.array(df[c], dtype="Int64")
        else:
            df[c] = df[c].astype(dt)
    extra = [c for c in df.columns if c not in schema.names]
    return df[schema.names + extra]


def write_table(df, path: str | Path, schema: Schema, *, csv: bool = True, meta: Mapping | None = None,
                **constants: Any) -> Path:
    """Write ``df`` as ``path`` (.parquet) + CSV twin, atomically, conformed to ``schema``, with
    ``{"table", "version", **meta}`` under the parquet metadata key ``gaspprobe.schema``."""
    import io as _io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from gaspprobe import io

    df = conform(df, schema, **constants)
    path = Path(path).with_suffix(".parquet")
    t = pa.Table.from_pandas(df, preserve_index=False)
    info = {"table": schema.name, "version": schema.version, **dict(meta or {})}
    t = t.replace_schema_metadata({**(t.schema.metadata or {}), META_KEY: json.dumps(info).encode()})
    buf = _io.BytesIO()
    pq.write_table(t, buf)
    io.atomic_write_bytes(path, buf.getvalue())
    if csv:
        io.atomic_write_text(path.with_suffix(".csv"), df.to_csv(index=False))
    return path


def table_meta(path: str | Path) -> dict:
    """The ``gaspprobe.schema`` metadata of a parquet table (``{"version": 0}`` for tables written
    before schemas were versioned)."""
    import pyarrow.parquet as pq

    try:
        md = pq.read_schema(Path(path)).metadata or {}
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except Exception as e:  # pyarrow raises several types for garbage files
        raise DataError(f"not a readable parquet table ({type(e).__name__})", path=path) from None
    raw = md.get(META_KEY)
    return json.loads(raw) if raw else {"version": 0}


def read_table(path: str | Path, schema: Schema):
    """Read a table written by :func:`write_table` (or an unversioned one with the required
    columns); a newer version than this code knows, another table kind or missing columns are a
    one-line DataError naming the file."""
    from gaspprobe import io

    path = Path(path)
    meta = table_meta(path)
    if meta.get("table") not in (None, schema.name):
        raise DataError(f"is a {meta.get('table')!r} table, expected {schema.name!r}", path=path)
    if int(meta.get("version", 0)) > schema.version:
        raise DataError(f"{schema.name} table version {meta['version']} is newer than this gaspprobe "
                        f"reads ({schema.version}); upgrade gaspprobe", path=path)
    df = io.read_table(path)
    try:
        return conform(df, schema)
    except DataError as e:
        raise DataError(str(e), path=path) from None


# --------------------------------------------------------------------------- the three numbers
def _isnan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pooled_accuracy(hits: Iterable[float], n: Iterable[int]) -> tuple[float, int]:
    """Micro average over matches: ``(sum(hits) / sum(n), sum(n))``; ``(nan, 0)`` when no matches.

    ``hits`` and ``n`` are parallel sequences (per scene, pair or gap). This is how every
    "accuracy" of gaspprobe is pooled: each GT match counts once."""
    h = [float(x) for x in hits]
    c = [int(x) for x in n]
    if len(h) != len(c):
        raise ValueError(f"hits/n: expected the same length, got {len(h)} and {len(c)}")
    tot = sum(c)
    return (sum(h) / tot if tot > 0 else float("nan")), tot


def gap_balanced_accuracy(acc_by_gap: Mapping[int, float], n_by_gap: Mapping[int, int]) -> tuple[float, int]:
    """Mean over the gaps that have matches of each gap's accuracy: ``(value, gaps used)``.

    Beside :func:`pooled_accuracy`: pooled over matches, the number is mostly gap 1 (near frames
    share most tokens); balanced, every Δt weighs the same."""
    vals = [float(acc_by_gap[g]) for g in acc_by_gap
            if int(n_by_gap.get(g, 0)) > 0 and not _isnan(acc_by_gap[g])]
    return (sum(vals) / len(vals), len(vals)) if vals else (float("nan"), 0)


def peak_layer(acc_by_layer: Mapping[str, float]) -> str | None:
    """The layer with the highest value among LLM layers (names ``llm.*``; all layers when none
    is), NaN skipped, ties to the earliest in the mapping's order; None when nothing is defined."""
    names = [l for l in acc_by_layer if str(l).startswith("llm.")] or list(acc_by_layer)
    best, best_v = None, -math.inf
    for l in names:
        v = acc_by_layer[l]
        if _isnan(v):
            continue
        if float(v) > best_v:
            best, best_v = l, float(v)
    return best


def within_noise_of_chance(acc: float, chance: float, n: int, z: float = NOISE_Z) -> bool:
    """True when ``acc`` is at most ``z`` binomial standard errors above ``chance`` over ``n``
    matches (``acc - chance <= z * sqrt(chance (1 - chance) / n)``)."""
    if n <= 0 or _isnan(acc) or _isnan(chance):
        return True
    se = math.sqrt(max(chance * (1.0 - chance), 0.0) / n)
    return acc - chance <= z * se


@dataclass
class Robustness:
    """Temporal robustness at one layer (see the module docstring).

    ``value``: mean over gaps g > g_min of ``ratios[g]`` (NaN when undefined, ``reason`` says why);
    ``ratios``: ``acc(g) / acc(g_min)`` for every gap used (g_min included, 1.0) — the normalized
    PCK curve; ``base_gap``, ``max_gap``: g_min and the largest gap used; ``at_max_gap``: the ratio
    at ``max_gap`` (PCK_24 / PCK_1 in the paper recipe); ``n``: matches over the gaps used."""

    value: float
    ratios: dict[int, float] = field(default_factory=dict)
    base_gap: int | None = None
    max_gap: int | None = None
    at_max_gap: float = float("nan")
    n: int = 0
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return not _isnan(self.value)


def normalized_curve(acc_by_gap: Mapping[int, float], n_by_gap: Mapping[int, int]) -> dict[int, float]:
    """``{g: acc(g) / acc(g_min)}`` over the gaps with matches ({} when acc(g_min) is 0 or absent)."""
    gaps = sorted(int(g) for g in acc_by_gap if int(n_by_gap.get(g, 0)) > 0 and not _isnan(acc_by_gap[g]))
    if not gaps or float(acc_by_gap[gaps[0]]) <= 0:
        return {}
    base = float(acc_by_gap[gaps[0]])
    return {g: float(acc_by_gap[g]) / base for g in gaps}


def robustness(acc_by_gap: Mapping[int, float], n_by_gap: Mapping[int, int], *,
               chance_by_gap: Mapping[int, float] | None = None, z: float = NOISE_Z) -> Robustness:
    """Temporal robustness from one layer's per-gap accuracies (the ONE implementation).

    Args:
        acc_by_gap: ``{gap: accuracy}`` pooled over the matches of that gap.
        n_by_gap: ``{gap: matches}``; gaps with 0 matches or a NaN accuracy are left out.
        chance_by_gap: ``{gap: chance accuracy}`` at the same tolerance; when given, a base
            accuracy within ``z`` standard errors of chance makes the value undefined.
    """
    acc_by_gap = {int(g): v for g, v in acc_by_gap.items()}
    n_by_gap = {int(g): int(v) for g, v in n_by_gap.items()}
    gaps = sorted(g for g in acc_by_gap if n_by_gap.get(g, 0) > 0 and not _isnan(acc_by_gap[g]))
    n = sum(n_by_gap[g] for g in gaps)
    if len(gaps) < 2:
        return Robustness(float("nan"), n=0, reason="fewer than two frame gaps with matches")
    g0, base = gaps[0], float(acc_by_gap[gaps[0]])
    if base <= 0:
        return Robustness(float("nan"), base_gap=g0, n=0, reason=f"accuracy at gap {g0} is 0")
    if chance_by_gap is not None and not _isnan(chance_by_gap.get(g0)) and within_noise_of_chance(
            base, float(chance_by_gap[g0]), n_by_gap[g0], z):
        return Robustness(float("nan"), base_gap=g0, n=0,
                          reason=f"accuracy at gap {g0} ({base:.3f}) is within noise of chance "
                                 f"({float(chance_by_gap[g0]):.3f}, {z:g} s.e. over {n_by_gap[g0]} matches)")
    ratios = {g: float(acc_by_gap[g]) / base for g in gaps}
    value = sum(ratios[g] for g in gaps[1:]) / (len(gaps) - 1)
    return Robustness(value, ratios, g0, gaps[-1], ratios[gaps[-1]], n)


# --------------------------------------------------------------------------- typed summaries
def _num(x: Any) -> float:
    try:
        return float("nan") if x is None else float(x)
    except (TypeError, ValueError):
        return float("nan")


@dataclass
class ProbeSummary:
    """The headline of one probe run (the typed view of ``summary.json``; reports read this).

    ``peak_layer`` is chosen on, and ``peak_accuracy`` / ``robustness`` are measured at, the
    tolerance ``headline_r`` (0 in the ``gasp``/``quick`` recipes, 2 = PCK@2patch in ``paper``);
    ``chance`` is the chance level at that same tolerance (``chance_r0``: the exact token's)."""

    model: str
    label: str | None = None
    mode: str = "hidden"
    patch_unit: str = "llm_token"
    headline_r: int = 0
    layers: list[str] = field(default_factory=list)
    peak_layer: str | None = None
    peak_accuracy: float = float("nan")
    chance: float = float("nan")
    chance_r0: float = float("nan")
    layer_mean_accuracy: float = float("nan")
    vision_accuracy: float = float("nan")
    gap_balanced_accuracy: float = float("nan")
    robustness: float = float("nan")
    robustness_at_max_gap: float = float("nan")
    robustness_reason: str | None = None
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)       # "r{r}" -> layer -> acc
    accuracy_by_gap: dict[str, float] = field(default_factory=dict)           # gap -> acc at peak
    normalized_by_gap: dict[str, float] = field(default_factory=dict)         # gap -> ratio at peak
    confidence_spearman: dict[str, float] = field(default_factory=dict)       # layer -> rho
    gaps: list[int] = field(default_factory=list)
    tolerances: list[int] = field(default_factory=list)
    fps: float | None = None
    frame_stride: int = 1
    n_matches: int = 0
    n_scenes: int = 0
    modality: str = "images"
    video_fps: float | None = None
    depth_metric: bool = True          # False: depth-probe scores are scale-invariant (non-metric scenes)

    @property
    def peak_rho(self) -> float:
        return _num(self.confidence_spearman.get(str(self.peak_layer)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, label: str | None = None) -> "ProbeSummary":
        """From a ``summary.json`` (any version: old runs lack the newer keys and get defaults)."""
        hr = int(d.get("headline_r", 0) or 0)
        chance = d.get("headline_chance", d.get("chance") if hr == 0 else d.get(f"chance_r{hr}"))
        return cls(
            model=str(d.get("model")), label=label if label is not None else d.get("model_label"),
            mode=str(d.get("mode", "hidden")), patch_unit=str(d.get("patch_unit", "llm_token")),
            headline_r=hr, layers=list(d.get("layers") or []), peak_layer=d.get("peak_layer"),
            peak_accuracy=_num(d.get("peak_accuracy")),
            chance=_num(chance), chance_r0=_num(d.get("chance")),
            layer_mean_accuracy=_num(d.get("layer_mean_accuracy")),
            vision_accuracy=_num(d.get("vision_accuracy")),
            gap_balanced_accuracy=_num(d.get("gap_balanced_accuracy")),
            robustness=_num(d.get("robustness")),
            robustness_at_max_gap=_num(d.get("robustness_at_max_gap")),
            robustness_reason=d.get("robustness_reason"),
            accuracy={k: {l: _num(v) for l, v in (vals or {}).items()} for k, vals in (d.get("accuracy") or {}).items()},
            accuracy_by_gap={str(k): _num(v) for k, v in (d.get("accuracy_by_gap") or {}).items()},
            normalized_by_gap={str(k): _num(v) for k, v in
                               (d.get("normalized_by_gap") or d.get("robustness_ratios") or {}).items()},
            confidence_spearman={l: _num(v) for l, v in (d.get("confidence_spearman") or {}).items()},
            gaps=[int(g) for g in d.get("gaps") or []], tolerances=[int(r) for r in d.get("tolerances") or []],
            fps=d.get("fps"), frame_stride=int(d.get("frame_stride", 1) or 1),
            n_matches=int(d.get("n_matches") or 0), n_scenes=int(d.get("n_scenes") or 0),
            modality=str(d.get("modality") or "images"), video_fps=d.get("video_fps"),
            depth_metric=bool(d.get("depth_metric", True)))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ValidationSummary:
    """Training validation at one step, computed with :func:`peak_layer` and :func:`robustness`
    exactly as the probe does (r=0, hidden states, pooled over matches)."""

    step: int
    accuracy: dict[str, float]                    # layer -> pooled acc
    n: int
    accuracy_by_gap: dict[str, dict[int, float]]  # layer -> gap -> acc
    n_by_gap: dict[int, int]
    peak_layer: str | None
    peak_accuracy: float
    robustness: float
    robustness_reason: str | None = None

    @classmethod
    def from_hits(cls, step: int, hits: Mapping[tuple[str, int], float],
                  n_by_gap: Mapping[int, int]) -> "ValidationSummary":
        """From hit counts ``{(layer, gap): hits}`` and GT matches per gap (shared by all layers)."""
        layers = list(dict.fromkeys(l for l, _ in hits))
        gaps = sorted(int(g) for g in n_by_gap)
        acc = {l: pooled_accuracy([hits.get((l, g), 0.0) for g in gaps], [n_by_gap[g] for g in gaps])[0]
               for l in layers}
        by_gap = {l: {g: pooled_accuracy([hits.get((l, g), 0.0)], [n_by_gap[g]])[0] for g in gaps} for l in layers}
        pk = peak_layer(acc)
        rob = robustness(by_gap[pk], n_by_gap) if pk is not None else Robustness(float("nan"), reason="no layer")
        return cls(step, acc, sum(int(n_by_gap[g]) for g in gaps), by_gap, {g: int(n_by_gap[g]) for g in gaps},
                   pk, acc.get(pk, float("nan")) if pk else float("nan"), rob.value, rob.reason)


@dataclass
class BenchSummary:
    """The headline of one bench run (typed view of its ``summary.json``)."""

    model: str
    benchmark: str
    overall: float
    n: int
    tasks: dict[str, float] = field(default_factory=dict)
    card_version: Any = None
    n_failed: int = 0
    label: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, label: str | None = None) -> "BenchSummary":
        return cls(model=str(d.get("model")), benchmark=str(d.get("benchmark")), overall=_num(d.get("overall")),
                   n=int(d.get("n") or 0), tasks={k: _num(v) for k, v in (d.get("tasks") or {}).items()},
                   card_version=d.get("card_version"), n_failed=int(d.get("n_failed") or 0), label=label)


def read_probe_summary(run_dir: str | Path) -> ProbeSummary:
    """The typed summary of a complete probe run folder (label from its manifest)."""
    from gaspprobe import io

    run_dir = Path(run_dir)
    m = io.read_manifest(run_dir, kind="probe")
    return ProbeSummary.from_dict(io.read_json(run_dir / "summary.json"), label=m.get("model_label"))
