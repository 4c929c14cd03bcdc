"""``report(runs, out)``: the comparison report from any mix of probe, train and bench runs.

Start here. The flow is: :func:`gaspprobe.reporting.runs.load_runs` (discover + validate, one-line
``DataError`` naming the folder for anything wrong) -> :func:`collect` (tidy DataFrames of the
numbers, one row per model x layer / gap / task / step) -> figures (:mod:`.plots`) and tables ->
:mod:`.render` (``report.html``, self-contained, and ``report.md`` with ``figures/*.png|pdf``
beside it) -> an atomic swap into ``out``.

Never a broken report over a good one: everything is built in a hidden temp folder beside ``out``;
only when it is complete (its ``manifest.json`` with ``status: complete`` written last) is the old
``out`` renamed away and the new one renamed in (two renames; if the second fails the old one is
put back). ``out`` must be empty, missing, or an earlier report: any other folder is refused.

Units: probe accuracies are fractions in the run files and percent (0-100) in the report; bench
scores are already x100. Deltas (GASP - base) are in points. The paper's numbers live only in the
section badged as the paper's, and in figure lines labelled "paper: ...".
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from gaspprobe import io
from gaspprobe.errors import DataError
from gaspprobe.reporting import plots
from gaspprobe.reporting.render import FigureRef, Section, Table, render_html, render_markdown
from gaspprobe.reporting.runs import Run, RunSet, load_runs

_LLM = re.compile(r"^llm\.(\d+)$")
DASH = "–"

#: The GASP paper's reported numbers (rows of the reference table). Sources: the official README
#: (danielchyeh/GASP) and the abstract of arXiv 2605.30231; the per-sub-task attribution of +18.2 /
#: +29.0 is from second-hand digests of the paper (see ../shared/research/benchmarks.md §4.6).
PAPER_REFERENCE = [
    ("Peak layer-wise correspondence, GASP", "> 70%",
     "peak-layer correspondence (PCK) after GASP training; README and abstract"),
    ("Layer-wise correspondence, off-the-shelf", "< 5%",
     "the base VLMs before GASP (README: 'from <5% to >70%')"),
    ("Temporal robustness, GASP", "> 85%",
     "at a 24-frame gap; the abstract reports baselines under 5%; the normalisation is not "
     "published (ours: mean acc(g)/acc(g_min) over gaps > g_min)"),
    ("All-Angles Bench gain", "+18.2",
     "camera-pose sub-task, LLaVA-NeXT-Video-7B, 22.7 -> 40.9; a sub-task gain, not the overall score"),
    ("VSI-Bench gain", "+29.0",
     "object-counting sub-task, LLaVA-NeXT-Video-7B, 23.5 -> 52.5; a sub-task gain, not the overall "
     "score"),
]


@dataclass
class ReportData:
    """The report's numbers as tidy DataFrames (model = display name)."""

    corr: Any       # model, mode, r, layer, layer_index, accuracy (fraction)
    probe: Any      # model, mode, peak_layer, peak, layer_mean, vision, chance, attention_peak, robustness,
    #                 n_pairs, n_matches, n_scenes
    gaps: Any       # model, gap, accuracy (fraction, at the model's peak layer)
    depth: Any      # model, layer, layer_index, absrel, delta1
    bench: Any      # model, benchmark, task, score (x100), n
    overall: Any    # model, benchmark, overall, n, n_failed, parse_failures
    loss: Any       # model, run, step, part, value
    consistency: Any = None  # model, benchmark, category, pairs, CC, WW, IC (x100; All-Angles)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- public entry
def report(runs: Any, out: str | Path, *, title: str | None = None, allow_mismatch: bool = False,
           paper: bool = True, formats: Iterable[str] = ("png", "pdf")) -> Path:
    """Write the comparison report for ``runs`` into ``out``.

    Args:
        runs: a run folder, a folder holding run folders (a loop output), or a list of them.
            Result objects with an ``out``/``run_dir`` attribute are accepted too.
        out: the report folder; created, or replaced if it holds an earlier report.
        title: page title (default "gaspprobe report").
        allow_mismatch: report runs of incompatible recipes anyway, with a warning section.
        paper: draw/list the GASP paper's reported numbers (always labelled as the paper's).
        formats: figure formats; "png" is always written (the HTML inlines it).
    Returns:
        The path of ``out/report.html``.
    Raises:
        DataError: bad or incompatible runs (one line naming the folder), or an ``out`` that is
            an unrelated non-empty folder.
    """
    out = Path(out).resolve()  # "." or "x/.." have no usable name to rename
    runset = load_runs(runs, allow_mismatch=allow_mismatch)
    _check_out(out, runset)
    formats = tuple(dict.fromkeys(("png",) + tuple(formats)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _build(runset, tmp, title=title or "gaspprobe report", paper=paper, formats=formats)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "report.html"


def _check_out(out: Path, runset: RunSet) -> None:
    if out.exists() and not out.is_dir():
        raise DataError("exists and is not a folder; choose another --out", path=out)
    if out.is_dir() and any(out.iterdir()):
        m = out / io.MANIFEST
        kind = None
        with contextlib.suppress(DataError):
            data = io.read_json(m) if m.is_file() else None
            kind = data.get("kind") if isinstance(data, dict) else None
        if kind != "report":
            raise DataError("exists and is not a gaspprobe report; refusing to replace it "
                            "(choose an empty or new --out)", path=out)
    res = out.resolve()
    for r in runset.runs:
        rp = r.path.resolve()
        if res == rp or res in rp.parents:
            raise DataError(f"--out would replace run folder {r.path}; choose another --out",
                            path=out)


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` onto ``out``; an old report is moved away first, then deleted."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)
        raise
    io._fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- numbers
def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _layer_index(layer: str) -> float | None:
    m = _LLM.match(str(layer))
    return int(m.group(1)) if m else None


def _pooled(df, metric: str, by: list[str]):
    """Accuracy-like ``metric`` of a probe table pooled over everything but ``by`` -> rows ``by +
    [value, n]``.

    The probe runner writes per-scene rows and pooled rows (``scene`` null = all scenes, ``gap``
    null = all gaps); pooled rows are used when present, otherwise the per-scene rows are pooled
    here as the n-weighted mean (a fraction of n matches is pooled exactly that way).
    """
    import pandas as pd

    d = df[(df["metric"] == metric) & (df["n"] > 0)].dropna(subset=["value"])
    d = d[d["scene"].isna()] if d["scene"].isna().any() else d
    if "gap" in by:
        d = d[d["gap"].notna()]
    elif d["gap"].isna().any():
        d = d[d["gap"].isna()]
    if not len(d):
        return pd.DataFrame(columns=by + ["value", "n"])
    d = d.assign(w=d["value"] * d["n"])
    if not by:
        return pd.DataFrame({"value": [d["w"].sum() / d["n"].sum()], "n": [d["n"].sum()]})
    g = d.groupby(by, sort=False, dropna=False)[["w", "n"]].sum().reset_index()
    g["value"] = g["w"] / g["n"]
    return g[by + ["value", "n"]]


def _probe_rows(run: Run, name: str):
    """(corr rows, summary row, gap rows, depth rows) for one probe run."""
    s, t = run.summary, run.table
    corr = []
    # The top-level block is the summary's primary mode ("hidden" unless only attention ran).
    main_mode = str(s.get("mode") or "hidden")
    blocks = [(main_mode, s.get("accuracy"))]
    if isinstance(s.get("attention"), dict) and main_mode != "attention":
        blocks.append(("attention", s["attention"].get("accuracy")))
    for mode, block in blocks:
        if isinstance(block, dict) and block:
            for r, per_layer in block.items():
                for layer, v in per_layer.items():
                    corr.append((name, mode, str(r), str(layer), _layer_index(layer), _num(v)))
        else:  # the summary lacks this block: rebuild it from the tidy table
            for metric in sorted(set(t["metric"])):
                if metric.startswith(f"{mode}/acc_"):
                    for row in _pooled(t, metric, ["layer"]).itertuples():
                        corr.append((name, mode, metric.split("acc_", 1)[1], str(row.layer),
                                     _layer_index(row.layer), float(row.value)))
    hidden_r0 = {c[3]: c[5] for c in corr if c[1] == main_mode and c[2] == "r0"}
    llm_r0 = {k: v for k, v in hidden_r0.items() if _layer_index(k) is not None and math.isfinite(v)}
    peak_layer = s.get("peak_layer")
    peak = _num(s.get("peak_accuracy"))
    if peak_layer is None and llm_r0:
        peak_layer = max(llm_r0, key=llm_r0.get)
    if not math.isfinite(peak) and peak_layer in hidden_r0:
        peak = hidden_r0[peak_layer]
    layer_mean = _num(s.get("layer_mean_accuracy"))
    if not math.isfinite(layer_mean) and llm_r0:
        layer_mean = sum(llm_r0.values()) / len(llm_r0)
    chance = _num(s.get("chance"))
    if not math.isfinite(chance):
        c = _pooled(t, "chance", [])
        chance = float(c["value"].iloc[0]) if len(c) else math.nan
    att = [c[5] for c in corr if c[1] == "attention" and c[2] == "r0" and c[4] is not None
           and math.isfinite(c[5])]
    att_peak = _num((s.get("attention") or {}).get("peak_accuracy")) if s.get("attention") else math.nan
    if not math.isfinite(att_peak) and att:
        att_peak = max(att)
    summary = dict(model=name, mode=main_mode, peak_layer=peak_layer, peak=peak, layer_mean=layer_mean,
                   vision=hidden_r0.get("vision", math.nan), chance=chance, attention_peak=att_peak,
                   robustness=_num(s.get("robustness")),
                   conf_rho=_num((s.get("confidence_spearman") or {}).get(str(peak_layer)))
                   if isinstance(s.get("confidence_spearman"), dict) else math.nan,
                   n_pairs=s.get("n_pairs"),
                   n_matches=s.get("n_matches"), n_scenes=s.get("n_scenes"))
    gaps = []
    by_gap = s.get("accuracy_by_gap")
    if isinstance(by_gap, dict) and by_gap:
        gaps = [(name, _num(g), _num(v)) for g, v in by_gap.items()]
    elif peak_layer is not None:
        tp = t[t["layer"].astype(str) == str(peak_layer)]
        gaps = [(name, _num(r.gap), float(r.value))
                for r in _pooled(tp, f"{main_mode}/acc_r0", ["gap"]).itertuples()]
    gaps = [g for g in gaps if math.isfinite(g[1]) and math.isfinite(g[2])]
    depth = []
    dp = s.get("depth_probe")
    if isinstance(dp, dict):
        for layer, d in dp.items():
            if isinstance(d, dict):
                depth.append((name, str(layer), _layer_index(layer), _num(d.get("absrel")),
                              _num(d.get("delta1"))))
    return corr, summary, gaps, depth


def collect(runset: RunSet) -> ReportData:
    """Gather every run's numbers into tidy DataFrames keyed by model display name."""
    import pandas as pd

    corr, probe, gaps, depth, bench, overall, loss = [], [], [], [], [], [], []
    consistency = []
    for run in runset.runs:
        name = runset.name(run.model_key)
        if run.kind == "probe":
            c, s, g, d = _probe_rows(run, name)
            corr += c
            probe.append(s)
            gaps += g
            depth += d
        elif run.kind == "bench":
            s, t = run.summary, run.table
            b = str(s["benchmark"])
            # The runner's n per task (merged sub-types included) wins over counting rows.
            counts = t["question_type"].astype(str).value_counts().to_dict()
            if isinstance(s.get("n_per_task"), dict):
                counts.update({str(k): v for k, v in s["n_per_task"].items()})
            for task, v in (s.get("tasks") or {}).items():
                bench.append((name, b, str(task), _num(v), counts.get(str(task))))
            pc = s.get("paired_consistency")
            if isinstance(pc, dict):
                for cat, d in pc.items():
                    if isinstance(d, dict):
                        consistency.append((name, b, str(cat), d.get("pairs"), _num(d.get("CC")),
                                            _num(d.get("WW")), _num(d.get("IC"))))
            overall.append(dict(model=name, benchmark=b, overall=_num(s.get("overall")),
                                n=s.get("n", len(t)), n_failed=s.get("n_failed"),
                                parse_failures=s.get("parse_failures")))
        else:
            who = runset.name(run.output_key) if run.output_key in runset.models \
                else f"train: {run.path.name}"
            t = run.table
            for part in [c for c in t.columns if str(c).startswith("loss")]:
                d = t[["step", part]].dropna()
                loss += [(who, str(run.path), _num(st), part, _num(v))
                         for st, v in zip(d["step"], d[part])]
    return ReportData(
        corr=pd.DataFrame(corr, columns=["model", "mode", "r", "layer", "layer_index", "accuracy"]),
        probe=pd.DataFrame(probe, columns=["model", "mode", "peak_layer", "peak", "layer_mean", "vision",
                                           "chance", "attention_peak", "robustness", "conf_rho",
                                           "n_pairs",
                                           "n_matches", "n_scenes"]),
        gaps=pd.DataFrame(gaps, columns=["model", "gap", "accuracy"]),
        depth=pd.DataFrame(depth, columns=["model", "layer", "layer_index", "absrel", "delta1"]),
        bench=pd.DataFrame(bench, columns=["model", "benchmark", "task", "score", "n"]),
        overall=pd.DataFrame(overall, columns=["model", "benchmark", "overall", "n", "n_failed",
                                               "parse_failures"]),
        loss=pd.DataFrame(loss, columns=["model", "run", "step", "part", "value"]),
        consistency=pd.DataFrame(consistency, columns=["model", "benchmark", "category", "pairs",
                                                       "CC", "WW", "IC"]),
        warnings=list(runset.warnings),
    )


# --------------------------------------------------------------------------- tables
def _pct(v: Any) -> str:
    f = _num(v)
    return f"{100 * f:.1f}" if math.isfinite(f) else DASH


def _pts(v: Any) -> str:
    f = _num(v)
    return f"{f:.1f}" if math.isfinite(f) else DASH


def _int(v: Any) -> str:
    f = _num(v)
    return str(int(f)) if math.isfinite(f) else DASH


def _rho(v: Any) -> str:
    f = _num(v)
    return f"{f:+.2f}" if math.isfinite(f) else DASH


def _delta(a: Any, b: Any, scale: float = 1.0) -> str:
    fa, fb = _num(a), _num(b)
    if not (math.isfinite(fa) and math.isfinite(fb)):
        return DASH
    return f"{scale * (fb - fa):+.1f}"


def headline_tables(data: ReportData, runset: RunSet) -> tuple[Table, Table | None]:
    """The headline table (one row per model) and the base -> GASP delta table (or None)."""
    names = [m.name for m in runset.models.values()]
    role = {m.name: m.role for m in runset.models.values()}
    pr = {r.model: r for r in data.probe.itertuples()}
    has_att = bool(data.probe["attention_peak"].notna().any()) if len(data.probe) else False
    benches = list(dict.fromkeys(data.overall["benchmark"]))
    ov = {(r.model, r.benchmark): r.overall for r in data.overall.itertuples()}
    cols = ["Model", "Role"]
    if len(data.probe):
        cols += ["Peak corr. r=0 (%)", "Peak layer", "Layer mean (%)", "Vision (%)", "Chance (%)"]
        cols += ["Peak q·k (%)"] if has_att else []
        cols += ["Robustness (%)", "Conf. ρ"]
    cols += [f"{b} overall" for b in benches]
    rows = []
    for n in names:
        row = [n, role[n]]
        if len(data.probe):
            p = pr.get(n)
            if p is None:
                row += [DASH] * (7 + has_att)
            else:
                row += [_pct(p.peak), str(p.peak_layer) if p.peak_layer is not None else DASH,
                        _pct(p.layer_mean), _pct(p.vision), _pct(p.chance)]
                row += [_pct(p.attention_peak)] if has_att else []
                row += [_pct(p.robustness), _rho(p.conf_rho)]
        row += [_pts(ov.get((n, b))) for b in benches]
        rows.append(row)
    modes = sorted(set(data.probe["mode"].dropna())) if len(data.probe) else []
    mode_note = "" if modes in ([], ["hidden"]) else \
        f"Correspondence columns use the probe's primary mode ({', '.join(modes)}). "
    head = Table("Headline (measured)", cols, rows,
                 note=mode_note + "Correspondence: nearest-neighbour patch matching accuracy at r=0 on the "
                      "probe's scenes (peak over LLM layers; layer mean over LLM layers; vision = "
                      "the projector output). Robustness: mean over gaps g > g_min of "
                      "acc(g)/acc(g_min) at the peak layer. Benchmark overall: the benchmark's "
                      "official aggregate, x100. Conf. ρ: Spearman correlation between match "
                      "confidence and correctness at the peak layer. Probe data: "
                 + "; ".join(f"{r.model}: {_int(r.n_scenes)} scenes, {_int(r.n_pairs)} frame pairs, "
                             f"{_int(r.n_matches)} matches" for r in data.probe.itertuples()) + "."
                 if len(data.probe) else "")
    if not runset.pairs:
        return head, None
    dcols = ["Base -> GASP"]
    if len(data.probe):
        dcols += ["Δ peak corr.", "Δ layer mean", "Δ vision"] + (["Δ peak q·k"] if has_att else [])
        dcols += ["Δ robustness"]
    dcols += [f"Δ {b} overall" for b in benches]
    drows = []
    for bk, gk in runset.pairs:
        b, g = runset.name(bk), runset.name(gk)
        row = [f"{b} -> {g}"]
        if len(data.probe):
            pb, pg = pr.get(b), pr.get(g)
            keys = ["peak", "layer_mean", "vision"] + (["attention_peak"] if has_att else [])
            keys += ["robustness"]
            row += [_delta(getattr(pb, k, None), getattr(pg, k, None), 100.0) for k in keys]
        row += [_delta(ov.get((b, bm)), ov.get((g, bm))) for bm in benches]
        drows.append(row)
    delta = Table("Base -> GASP deltas (measured, points)", dcols, drows,
                  note="GASP minus base, in percentage points; pairs come from the train runs "
                       "(base model -> output model).")
    return head, delta


def bench_tables(data: ReportData, runset: RunSet) -> list[Table]:
    """One table per benchmark: score per question type per model, deltas per pair, overall."""
    tables = []
    names = [m.name for m in runset.models.values()]
    for b in dict.fromkeys(data.bench["benchmark"].tolist() + data.overall["benchmark"].tolist()):
        d = data.bench[data.bench["benchmark"] == b]
        o = data.overall[data.overall["benchmark"] == b]
        models = [n for n in names if n in set(d["model"]) | set(o["model"])]
        pairs = [(runset.name(x), runset.name(y)) for x, y in runset.pairs
                 if runset.name(x) in models and runset.name(y) in models]
        sc = {(r.model, r.task): r.score for r in d.itertuples()}
        ns = {r.task: r.n for r in d.itertuples() if r.n is not None and _num(r.n) == _num(r.n)}
        cols = ["Question type", "n"] + models + [f"Δ {g}" for _, g in pairs]
        rows = []
        for task in dict.fromkeys(d["task"]):
            n = ns.get(task)
            row = [task, str(int(n)) if n is not None else DASH]
            row += [_pts(sc.get((m, task))) for m in models]
            row += [_delta(sc.get((bb, task)), sc.get((gg, task))) for bb, gg in pairs]
            rows.append(row)
        ov = {r.model: r for r in o.itertuples()}
        n_all = next((int(r.n) for r in o.itertuples() if r.n is not None), None)
        rows.append(["overall", str(n_all) if n_all is not None else DASH]
                    + [_pts(getattr(ov.get(m), "overall", None)) for m in models]
                    + [_delta(getattr(ov.get(bb), "overall", None), getattr(ov.get(gg), "overall",
                                                                            None))
                       for bb, gg in pairs])
        fails = [f"{m}: {int(_num(r.n_failed)) if math.isfinite(_num(r.n_failed)) else DASH} failed, "
                 f"{int(_num(r.parse_failures)) if math.isfinite(_num(r.parse_failures)) else DASH} "
                 f"unparsed" for m, r in ov.items()]
        tables.append(Table(f"{b}: score per question type (x100, measured)", cols, rows,
                            note="n = questions of that type; overall = the benchmark's official "
                                 "aggregate. " + "; ".join(fails)))
        pc = data.consistency[data.consistency["benchmark"] == b] \
            if data.consistency is not None else None
        if pc is not None and len(pc):
            pm = [m for m in models if m in set(pc["model"])]
            v = {(r.model, r.category): r for r in pc.itertuples()}
            ccols = ["Category", "pairs"] + [f"{m} {k}" for m in pm for k in ("CC", "WW", "IC")]
            crows = []
            for cat in dict.fromkeys(pc["category"]):
                first = next((v[(m, cat)] for m in pm if (m, cat) in v), None)
                pairs_n = first.pairs if first is not None else None
                row = [cat, str(int(pairs_n)) if pairs_n is not None and _num(pairs_n) == _num(pairs_n)
                       else DASH]
                for m in pm:
                    r = v.get((m, cat))
                    row += [_pts(getattr(r, k, None)) for k in ("CC", "WW", "IC")]
                crows.append(row)
            tables.append(Table(f"{b}: paired consistency (%, measured)", ccols, crows,
                                note="Per question pair (pair_idx): CC both correct, WW both wrong, "
                                     "IC inconsistent; percent of that category's pairs."))
    return tables


def paper_table() -> Table:
    return Table("Reported in the GASP paper (Yeh et al., CVPR 2026)", ["Claim", "Paper", "Refers to"],
                 [list(r) for r in PAPER_REFERENCE],
                 note="Reference only: the paper's models are 7B VLMs trained on DL3DV at scale; "
                      "these numbers were not measured by this report and are never mixed into the "
                      "measured tables above.")


def _models_table(runset: RunSet) -> Table:
    kinds: dict[str, list[str]] = {}
    for r in runset.runs:
        kinds.setdefault(r.model_key, []).append(r.kind + (f":{r.benchmark}" if r.benchmark else ""))
    rows = []
    for m in runset.models.values():
        base = runset.name(m.base_key) if m.base_key else DASH
        rows.append([m.name, m.role, base, m.model, ", ".join(kinds.get(m.key, [])) or DASH])
    return Table("Models", ["Name", "Role", "Base", "Model (as given)", "Runs"], rows)


def _runs_table(runset: RunSet) -> Table:
    rows = []
    for r in runset.runs:
        m = r.manifest
        what = r.benchmark or ""
        rows.append([str(r.path), r.kind + (f" ({what})" if what else ""), runset.name(r.model_key)
                     if r.kind != "train" else f"{runset.name(r.model_key)} (base)",
                     str(m.get("seed", DASH)), str(m.get("git_sha") or DASH)[:10],
                     str(m.get("created", DASH))])
    return Table("Runs", ["Folder", "Kind", "Model", "Seed", "git sha", "Created"], rows)


# --------------------------------------------------------------------------- build
def _build(runset: RunSet, root: Path, *, title: str, paper: bool, formats: tuple[str, ...]) -> None:
    data = collect(runset)
    pal = runset.palette
    figdir = root / "figures"
    figs: list[FigureRef] = []

    def save(fig, name: str, title_: str, caption: str) -> None:
        paths = plots.save_figure(fig, figdir, name, formats)
        figs.append(FigureRef(title_, f"figures/{name}.png", caption,
                              f"figures/{name}.pdf" if "pdf" in paths else None))

    chance = {r.model: r.chance for r in data.probe.itertuples()}
    for mode, label in (("hidden", "hidden states"), ("attention", "attention q·k")):
        c = data.corr[(data.corr["mode"] == mode) & (data.corr["r"] == "r0")]
        if len(c):
            save(plots.accuracy_vs_layer_figure(c, pal, chance=chance, paper=paper,
                                                title=f"Correspondence accuracy (r=0, {label})"),
                 f"accuracy_vs_layer_{mode}", f"Correspondence accuracy vs layer ({label})",
                 "Solid: each LLM layer; dashed: the vision-tower output (projector) in the model's "
                 "colour; dotted grey: chance (1 / tokens per frame)."
                 + (" Dark-red dash-dot lines are the paper's reported numbers, not measurements."
                    if paper else ""))
    if len(data.gaps):
        save(plots.accuracy_vs_gap_figure(data.gaps, pal), "accuracy_vs_gap",
             "Accuracy vs frame gap", "Hidden-state accuracy (r=0) at each model's own peak layer.")
    rob = data.probe[["model", "robustness"]].dropna()
    if len(rob):
        save(plots.robustness_figure(rob, pal, paper=paper), "robustness", "Temporal robustness",
             "Mean over gaps g > g_min of acc(g)/acc(g_min) at the peak layer."
             + (" The dark-red line is the paper's reported GASP value." if paper else ""))
    if len(data.depth):
        save(plots.depth_figure(data.depth, pal), "depth_probe", "Depth probe vs layer",
             "Closed-form ridge regression from image-token features to log patch depth, scored on "
             "held-out scenes; dashed: vision-tower output.")
    pairs = [(runset.name(b), runset.name(g)) for b, g in runset.pairs]
    for b in dict.fromkeys(data.bench["benchmark"]):
        d = data.bench[data.bench["benchmark"] == b]
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", b)
        save(plots.benchmark_figure(d, pal, pairs, benchmark=b), f"benchmark_{safe}",
             f"{b} per question type", "Scores x100; the number after a GASP bar is its delta to "
             "its base model in points.")
    if len(data.loss):
        save(plots.loss_figure(data.loss, pal), "training_loss", "Training losses",
             "Every loss column of each train run's train_log.csv, coloured by the model it "
             "produced.")

    head, delta = headline_tables(data, runset)
    results = Section("Headline", [head] + ([delta] if delta else []), anchor="headline")
    sections = [results]
    if data.warnings:
        sections.insert(0, Section("Warnings: runs of different recipes compared",
                                   list(data.warnings), kind="warning", anchor="warnings"))
    if paper:
        sections.append(Section("Reported in the paper", [paper_table()], kind="paper",
                                anchor="paper"))
    if figs:
        sections.append(Section("Figures", list(figs), anchor="figures"))
    bt = bench_tables(data, runset)
    if bt:
        sections.append(Section("Benchmarks per question type", list(bt), anchor="benchmarks"))
    sections.append(Section("Models and runs", [_models_table(runset), _runs_table(runset)],
                            kind="info", anchor="runs"))
    created = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    counts = {k: len(runset.of_kind(k)) for k in ("probe", "train", "bench")}
    subtitle = (f"{len(runset.models)} model(s); {counts['probe']} probe, {counts['train']} train, "
                f"{counts['bench']} bench run(s); generated {created} by gaspprobe.")
    payload = _payload(data, runset, paper)
    io.atomic_write_text(root / "report.html", render_html(title, subtitle, sections, payload, root))
    io.atomic_write_text(root / "report.md", render_markdown(title, subtitle, sections))
    io.atomic_write_json(root / "report.json", payload)
    # Written last: a folder without it is not a finished report.
    io.write_manifest(root, io.make_manifest(
        "report", {"runs": [str(r.path) for r in runset.runs], "paper": paper,
                   "formats": list(formats), "title": title},
        status="complete", models={m.name: m.model for m in runset.models.values()},
        warnings=data.warnings))


def _records(df) -> list[dict]:
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in row.items()} for row in df.to_dict(orient="records")]


def _payload(data: ReportData, runset: RunSet, paper: bool) -> dict:
    """All the report's numbers, for the inline JSON block and report.json."""
    out = {
        "measured": {k: _records(getattr(data, k)) for k in
                     ("probe", "corr", "gaps", "depth", "overall", "bench", "consistency")},
        "models": [dict(name=m.name, model=m.model, role=m.role,
                        base=runset.name(m.base_key) if m.base_key else None, color=m.color)
                   for m in runset.models.values()],
        "pairs": [[runset.name(b), runset.name(g)] for b, g in runset.pairs],
        "runs": [dict(path=str(r.path), kind=r.kind, model=r.model) for r in runset.runs],
        "warnings": data.warnings,
    }
    if paper:
        out["paper_reference"] = [dict(claim=c, value=v, refers_to=t) for c, v, t in PAPER_REFERENCE]
    return io._finite(out)
