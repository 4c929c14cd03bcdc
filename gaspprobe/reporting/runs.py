"""Find, read and validate the run folders a report is built from.

Start at :func:`load_runs`: it takes run folders (or folders holding run folders, such as a
``gaspprobe loop`` output), reads each one's ``manifest.json`` and tables, and returns a
:class:`RunSet` with the models named, coloured and paired (base -> GASP). Every problem a user can
fix is a one-line :class:`~gaspprobe.errors.DataError` naming the folder:

- a folder that is not a gaspprobe run (no ``manifest.json``, or a kind other than probe/train/bench);
- a half-written run (``status`` not ``"complete"``, or a table/summary missing or unreadable);
- runs whose numbers cannot be compared: two probe runs with different recipes (config keys other
  than the ones in :data:`NON_RECIPE_KEYS`) or different scene sets, two runs of one benchmark with
  different settings (config, frames, prompt variant, card version) or different question ids;
- two runs of the same kind for the same model (and benchmark): the report would have to pick one.

Base vs GASP pairing: a train run's manifest names its base ``model`` and its ``output_model``; a
probe/bench run whose ``model`` is that ``output_model`` belongs to the GASP model of that base.
Paths are compared after resolving them (relative to the working folder, then to the train run),
so ``runs/train/model`` and its absolute form are the same model. Without train runs, exactly one
model labelled ``base`` and one labelled ``gasp`` (``model_label`` in the manifests) are paired.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from gaspprobe import io
from gaspprobe.errors import DataError

KINDS = ("probe", "train", "bench")

#: Config keys that say where or how fast a run ran, not what it measured; they may differ between
#: runs that are compared. Every other config key is part of the recipe and must agree.
NON_RECIPE_KEYS = frozenset({
    "model", "model_label", "label", "output_model", "out", "out_dir", "output", "output_dir",
    "run_dir", "scenes", "scenes_dir", "data", "data_dir", "video_root", "image_root", "cache_dir",
    "device", "devices", "batch_size", "num_threads", "threads", "workers", "num_workers",
    "progress", "resume", "verbose", "quiet", "shard", "num_processes",
})

# How deep to look for run folders inside a folder that is not itself a run (a loop output keeps
# its stages one or two levels down).
_MAX_DEPTH = 3


@dataclass
class Run:
    """One validated run folder.

    Attributes:
        path: the run folder.
        kind: ``"probe"``, ``"train"`` or ``"bench"``.
        manifest: the parsed ``manifest.json``.
        model: the model string as given to the run (train runs: the base model).
        model_key: ``model`` normalised for comparison (resolved path when it is a path).
        summary: ``summary.json`` (probe/bench), ``{}`` for train runs.
        table: ``probe.parquet`` / ``scores.parquet`` / ``train_log.csv`` as a DataFrame.
        output_key: train runs only: the normalised ``output_model`` (``None`` otherwise).
    """

    path: Path
    kind: str
    manifest: dict
    model: str
    model_key: str
    summary: dict = field(default_factory=dict)
    table: Any = None
    output_key: str | None = None

    @property
    def label(self) -> str | None:
        lab = self.manifest.get("model_label")
        return str(lab) if lab not in (None, "") else None

    @property
    def benchmark(self) -> str | None:
        return self.summary.get("benchmark") if self.kind == "bench" else None


@dataclass
class ModelInfo:
    """A model as the report shows it: display name, colour, role and pairing."""

    key: str
    model: str            # the model string as first given
    name: str             # display name, unique within the report
    role: str             # "base", "gasp" or "model"
    base_key: str | None = None   # for a GASP model: its base's key
    color: str = "#333333"


@dataclass
class RunSet:
    """Validated runs plus the models they cover, in report order (each base before its GASP)."""

    runs: list[Run]
    models: dict[str, ModelInfo]          # key -> info, in display order
    pairs: list[tuple[str, str]]          # (base_key, gasp_key)
    warnings: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Run]:
        return [r for r in self.runs if r.kind == kind]

    def name(self, key: str) -> str:
        return self.models[key].name

    @property
    def palette(self) -> dict[str, str]:
        """Display name -> hex colour; the same colour for a model in every figure."""
        return {m.name: m.color for m in self.models.values()}


# --------------------------------------------------------------------------- discovery
def discover(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand the given folders into run folders.

    A folder with a probe/train/bench ``manifest.json`` is a run; any other folder is searched (up
    to three levels, skipping hidden folders and not descending into runs) for run folders.

    Returns:
        Run folders, in the order given (found ones sorted by path), without duplicates.
    Raises:
        DataError: a path that is missing, or a folder with no run in or under it.
    """
    if isinstance(paths, (str, Path)) or hasattr(paths, "out") or hasattr(paths, "run_dir"):
        paths = [paths]
    out: list[Path] = []
    seen: set[Path] = set()
    given = [_as_path(p) for p in paths]
    if not given:
        raise DataError("no run folders given")
    for p in given:
        if not p.exists():
            raise DataError("no such folder", path=p)
        if not p.is_dir():
            raise DataError("not a folder (expected a gaspprobe run folder)", path=p)
        own = _manifest_kind(p)
        found = [p] if own in KINDS else sorted(_find_runs(p, _MAX_DEPTH))
        if not found:
            if own is None:
                raise DataError("not a gaspprobe run (no manifest.json, and no run folders inside)",
                                path=p)
            raise DataError(f"is a {own!r} folder, not a probe/train/bench run, and holds none",
                            path=p)
        for f in found:
            r = f.resolve()
            if r not in seen:
                seen.add(r)
                out.append(f)
    return out


def _as_path(p: Any) -> Path:
    # Result objects of the other subpackages carry their run folder as .out / .run_dir / .path.
    for attr in ("out", "run_dir", "path"):
        v = getattr(p, attr, None)
        if isinstance(v, (str, Path)) and not isinstance(p, (str, Path)):
            return Path(v)
    return Path(p)


def _manifest_kind(p: Path) -> str | None:
    m = p / io.MANIFEST
    if not m.is_file():
        return None
    try:
        data = io.read_json(m)
    except DataError:
        return "unreadable"
    return str(data.get("kind")) if isinstance(data, dict) else "unreadable"


def _find_runs(folder: Path, depth: int) -> list[Path]:
    if depth <= 0:
        return []
    found = []
    try:
        children = sorted(c for c in folder.iterdir() if c.is_dir() and not c.name.startswith("."))
    except OSError:
        return []
    for c in children:
        kind = _manifest_kind(c)
        if kind in KINDS:
            found.append(c)
        elif kind is None:
            found.extend(_find_runs(c, depth - 1))
        # folders with another kind (scenes, report, loop stages) hold no runs of ours
    return found


# --------------------------------------------------------------------------- reading one run
def read_run(path: str | Path) -> Run:
    """Read and validate one run folder (manifest, status, its tables through gaspprobe.tables)."""
    from gaspprobe import tables

    path = Path(path)
    m = io.read_manifest(path)
    kind = m.get("kind")
    if kind not in KINDS:
        raise DataError(f"is a {kind!r} folder, not a probe/train/bench run", path=path)
    status = m.get("status")
    if status != "complete":
        raise DataError(f"{kind} run is not finished (status {status!r}): rerun it or leave it out",
                        path=path)
    if kind == "probe":
        summary = _read_summary(path)
        table = _read_parquet(path, "probe.parquet", tables.PROBE)
        _check_probe_summary(path, summary)
    elif kind == "bench":
        summary = _read_summary(path)
        table = _read_parquet(path, "scores.parquet", tables.BENCH)
        for k in ("benchmark", "overall"):
            if k not in summary:
                raise DataError(f"summary.json has no {k!r}: half-written bench run", path=path)
    else:
        summary = {}
        table = _read_train_log(path)
    model = m.get("model", summary.get("model"))
    if model in (None, ""):
        raise DataError("manifest.json names no 'model'", path=path)
    model = str(model)
    run = Run(path=path, kind=kind, manifest=m, model=model, model_key=model_key(model, path),
              summary=summary, table=table)
    if kind == "train" and m.get("output_model"):
        run.output_key = model_key(str(m["output_model"]), path)
    return run


def _read_summary(path: Path) -> dict:
    p = path / "summary.json"
    if not p.is_file():
        raise DataError("no summary.json: half-written run", path=path)
    s = io.read_json(p)
    if not isinstance(s, dict):
        raise DataError("summary.json is not an object", path=path)
    return s


def _read_parquet(path: Path, name: str, schema):
    """``path/name`` read through :func:`gaspprobe.tables.read_table` (schema version and columns
    checked; tables written before schemas were versioned are read too)."""
    from gaspprobe import tables

    p = path / name
    if not p.is_file():
        raise DataError(f"no {name}: half-written run", path=path)
    try:
        return tables.read_table(p, schema)
    except DataError as e:
        msg = str(e)[len(f"{e.path}: "):] if e.path is not None else str(e)
        raise DataError(f"{name}: {msg}", path=path) from None


def _read_train_log(path: Path):
    import pandas as pd

    from gaspprobe import tables

    p = path / "train_log.csv"
    if not p.is_file() and (path / "train_log.parquet").is_file():
        return _read_parquet(path, "train_log.parquet", tables.TRAIN_LOG)
    if not p.is_file():
        raise DataError("no train_log.csv: half-written train run", path=path)
    try:
        df = pd.read_csv(p)
    except Exception as e:  # pandas raises several types for garbage files
        raise DataError(f"train_log.csv is not a readable CSV ({type(e).__name__})", path=path) from None
    try:
        return tables.conform(df, tables.TRAIN_LOG)
    except DataError as e:
        raise DataError(f"train_log.csv: {e}", path=path) from None


def source_blocks(summary: dict) -> dict[str, dict]:
    """The summary's blocks of feature sources other than its primary one (``attention``, ``q``,
    ``k``, ``v``, ``q_rope``, ``k_rope``, ...): every top-level object with ``accuracy`` and
    ``peak_layer``, in the summary's order."""
    return {str(k): v for k, v in summary.items()
            if isinstance(v, dict) and isinstance(v.get("accuracy"), dict) and "peak_layer" in v}


def _check_probe_summary(path: Path, s: dict) -> None:
    """Probe accuracies are fractions in [0, 1]; anything else is a schema we would misreport."""
    acc = s.get("accuracy")
    if acc is None:
        # The report reads the probe's numbers and never rebuilds them from the table.
        raise DataError("summary.json has no 'accuracy': half-written or from an older probe; "
                        "rerun the probe", path=path)
    if not isinstance(acc, dict):
        raise DataError("summary.json 'accuracy' is not an object {r: {layer: value}}", path=path)
    blocks = [acc or {}] + [b["accuracy"] for b in source_blocks(s).values()]
    for block in blocks:
        for r, per_layer in block.items():
            if not isinstance(per_layer, dict):
                raise DataError(f"summary.json accuracy[{r!r}] is not an object {{layer: value}}",
                                path=path)
            for layer, v in per_layer.items():
                if v is not None and not (isinstance(v, (int, float)) and -1e-9 <= v <= 1 + 1e-9):
                    raise DataError(f"summary.json accuracy[{r!r}][{layer!r}] = {v!r} is not a "
                                    "fraction in [0, 1]", path=path)


def model_key(model: str, run_dir: Path | None = None) -> str:
    """Normalise a model string for comparison: an existing path -> its resolved form."""
    p = Path(model).expanduser()
    cands = [p] if p.is_absolute() else [p] + ([run_dir / p] if run_dir is not None else [])
    for c in cands:
        if c.exists():
            return str(c.resolve())
    if p.is_absolute() or model.startswith((".", "~")):
        return os.path.normpath(str(p))
    return model


# --------------------------------------------------------------------------- the set
def load_runs(paths: str | Path | Iterable[str | Path], *, allow_mismatch: bool = False) -> RunSet:
    """Discover, read and validate runs; name, pair and colour their models.

    Args:
        paths: run folders and/or folders holding run folders.
        allow_mismatch: turn incompatible-recipe errors into warnings (shown in the report).
    Returns:
        A :class:`RunSet`.
    Raises:
        DataError: one line naming the offending folder (see the module docstring).
    """
    runs = [read_run(p) for p in discover(paths)]
    warnings: list[str] = []
    _check_duplicates(runs)
    _check_compatible(runs, allow_mismatch, warnings)
    models, pairs = _models(runs)
    return RunSet(runs=runs, models=models, pairs=pairs, warnings=warnings)


def _check_duplicates(runs: list[Run]) -> None:
    seen: dict[tuple, Run] = {}
    for r in runs:
        # Several train runs may start from one base (an ablation); they differ by their output.
        key = (r.kind, r.output_key or str(r.path.resolve())) if r.kind == "train" \
            else (r.kind, r.model_key, r.benchmark)
        if key in seen:
            what = f"{r.kind} run" + (f" of {r.benchmark}" if r.benchmark else "")
            whom = f"producing {r.manifest.get('output_model')!r}" if r.kind == "train" \
                else f"for model {r.model!r}"
            raise DataError(f"a second {what} {whom} (the first is {seen[key].path}); "
                            "give one per model", path=r.path)
        seen[key] = r


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix or "config": d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if str(k).lower() in NON_RECIPE_KEYS:
            continue
        if isinstance(v, dict):
            out.update(_flat(v, name))
        else:
            out[name] = v
    return out


def recipe_diff(a: dict, b: dict) -> list[str]:
    """Config keys (dotted) whose values differ between two manifests' configs, recipe keys only."""
    fa, fb = _flat(a or {}), _flat(b or {})
    return sorted(k for k in set(fa) | set(fb) if _norm(fa.get(k)) != _norm(fb.get(k)))


def _norm(v: Any) -> Any:
    # JSON round trips turn tuples into lists; compare the JSON forms.
    if isinstance(v, tuple):
        return [_norm(x) for x in v]
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def _check_compatible(runs: list[Run], allow: bool, warnings: list[str]) -> None:
    def problem(run: Run, msg: str) -> None:
        if not allow:
            raise DataError(msg + " (--allow-mismatch to report anyway)", path=run.path)
        warnings.append(f"{run.path}: {msg}")

    probes = [r for r in runs if r.kind == "probe"]
    if probes:
        ref = probes[0]
        ref_scenes = set(ref.table["scene"].dropna().astype(str))
        for r in probes[1:]:
            diff = recipe_diff(ref.manifest.get("config"), r.manifest.get("config"))
            if diff:
                problem(r, f"probe recipe differs from {ref.path} in {', '.join(diff)}: "
                           "the accuracies are not comparable")
                continue
            scenes = set(r.table["scene"].dropna().astype(str))
            if scenes != ref_scenes:
                problem(r, f"probed on other scenes than {ref.path} ({len(scenes)} vs "
                           f"{len(ref_scenes)} scenes, {len(scenes ^ ref_scenes)} differ)")
    by_bench: dict[str, list[Run]] = {}
    for r in runs:
        if r.kind == "bench":
            by_bench.setdefault(str(r.benchmark), []).append(r)
    for bench, group in by_bench.items():
        ref = group[0]
        ref_ids = set(ref.table["id"].astype(str))
        for r in group[1:]:
            diff = recipe_diff(ref.manifest.get("config"), r.manifest.get("config"))
            diff += [k for k in ("frames", "prompt_variant", "card_version")
                     if _norm(ref.summary.get(k)) != _norm(r.summary.get(k))]
            if diff:
                problem(r, f"{bench} settings differ from {ref.path} in {', '.join(diff)}: "
                           "the scores are not comparable")
                continue
            ids = set(r.table["id"].astype(str))
            if ids != ref_ids:
                problem(r, f"{bench} run answered other questions than {ref.path} ({len(ids)} vs "
                           f"{len(ref_ids)} ids, {len(ids ^ ref_ids)} differ)")


def _models(runs: list[Run]) -> tuple[dict[str, ModelInfo], list[tuple[str, str]]]:
    """Name, pair and colour the models that the runs cover (see the module docstring)."""
    first: dict[str, str] = {}      # key -> model string as first given
    labels: dict[str, str] = {}
    for r in runs:
        first.setdefault(r.model_key, r.model)
        # A train run's label is ambiguous (its base or its output?), so only probe/bench runs,
        # which are about exactly one model, name models.
        if r.kind != "train" and r.label and r.model_key not in labels:
            labels[r.model_key] = r.label
    gasp_of: dict[str, str] = {}    # gasp key -> base key
    for r in runs:
        if r.kind == "train" and r.output_key:
            gasp_of[r.output_key] = r.model_key
            first.setdefault(r.output_key, str(r.manifest["output_model"]))
    if not gasp_of:
        by_label = {}
        for k, lab in labels.items():
            by_label.setdefault(lab.lower(), []).append(k)
        if len(by_label.get("base", [])) == 1 and len(by_label.get("gasp", [])) == 1:
            gasp_of[by_label["gasp"][0]] = by_label["base"][0]
    # Only models that some probe/bench/train run is about are shown.
    shown = {r.model_key for r in runs} | set(gasp_of)
    order: list[str] = []
    pairs: list[tuple[str, str]] = []
    for g, b in gasp_of.items():
        for k in (b, g):
            if k not in order:
                order.append(k)
        pairs.append((b, g))
    order += [k for k in first if k in shown and k not in order]

    def short(k: str) -> str:
        s = first[k]
        if k in gasp_of:
            return f"GASP({labels.get(gasp_of[k]) or short(gasp_of[k])})"
        p = Path(s)
        if os.sep in s and (p.is_absolute() or s.startswith(".") or s.count("/") > 1):
            return p.parent.name if p.name == "model" and p.parent.name else p.name
        return s

    names: dict[str, str] = {}
    for k in order:
        name = labels.get(k) or short(k)
        base, i = name, 2
        while name in names.values():
            name, i = f"{base} #{i}", i + 1
        names[k] = name
    colors = _palette(len(order))
    models = {}
    for i, k in enumerate(order):
        role = "gasp" if k in gasp_of else ("base" if k in gasp_of.values() else "model")
        models[k] = ModelInfo(key=k, model=first[k], name=names[k], role=role,
                              base_key=gasp_of.get(k), color=colors[i])
    # A pair is kept only if both models exist in the report (they always do: both are in order).
    return models, pairs


def _palette(n: int) -> list[str]:
    import seaborn as sns

    cols = sns.color_palette("colorblind", n) if n <= 10 else sns.color_palette("husl", n)
    return [_hex(c) for c in cols]


def _hex(rgb) -> str:
    return "#" + "".join(f"{int(round(255 * float(x))):02x}" for x in rgb[:3])
