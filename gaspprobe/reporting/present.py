"""Present: turn the collected numbers (:class:`~gaspprobe.reporting.collect.ReportData`) into the
report's tables, figures and sections. Nothing here computes a statistic: every number arrives
computed (by the producers' summaries and :mod:`gaspprobe.tables`); this module formats, orders and
draws it.

Start at :func:`build_sections`. Units: probe accuracies are fractions in the data and percent
(0-100) in the tables; bench scores are already x100; deltas (GASP - base) are in points; a value
that is missing or undefined (n = 0) is shown as ``–``, never ``nan``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from gaspprobe.errors import GaspError
from gaspprobe.reporting import plots
from gaspprobe.reporting.collect import num

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


# --------------------------------------------------------------------------- report items
@dataclass
class Table:
    """A table of already formatted cells (plain strings; the templates escape them)."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""

    def text_columns(self) -> list[bool]:
        """A column whose cells are all words (not numbers) is left-aligned, header included."""
        return [i > 0 and bool(self.rows) and all(is_text(str(r[i])) or str(r[i]).strip() in ("", DASH)
                                                  for r in self.rows)
                for i in range(len(self.columns))]


@dataclass
class FigureRef:
    """A figure saved beside the report: ``png`` (and ``pdf``) relative to the report folder."""

    title: str
    png: str
    caption: str = ""
    pdf: str | None = None


Item = Union[Table, FigureRef, str]


@dataclass
class Section:
    title: str
    items: list[Item] = field(default_factory=list)
    kind: str = "measured"   # "measured" | "paper" | "info" | "warning"
    anchor: str = ""


def is_text(cell: str) -> bool:
    """True for a cell of words, False for a number (``12.3``, ``+4.0``, ``12.3 [8.1, 16.0]``)."""
    s = cell.strip().replace("%", "").replace("+", "").replace("−", "-").replace(DASH, "")
    if not s:
        return False
    try:
        float(s.split(" ")[0].rstrip("*"))
        return False
    except ValueError:
        return True


# --------------------------------------------------------------------------- formatting
def pct(v: Any) -> str:
    f = num(v)
    return f"{100 * f:.1f}" if math.isfinite(f) else DASH


def pts(v: Any) -> str:
    f = num(v)
    return f"{f:.1f}" if math.isfinite(f) else DASH


def integer(v: Any) -> str:
    f = num(v)
    return str(int(f)) if math.isfinite(f) else DASH


def rho(v: Any) -> str:
    f = num(v)
    return f"{f:+.2f}" if math.isfinite(f) else DASH


def delta(a: Any, b: Any, scale: float = 1.0) -> str:
    fa, fb = num(a), num(b)
    if not (math.isfinite(fa) and math.isfinite(fb)):
        return DASH
    return f"{scale * (fb - fa):+.1f}"


def interval(lo: Any, hi: Any) -> str:
    """``[lo, hi]`` in points, or an empty string when the interval is unknown."""
    a, b = num(lo), num(hi)
    return f" [{a:.1f}, {b:.1f}]" if math.isfinite(a) and math.isfinite(b) else ""


# --------------------------------------------------------------------------- tables
def source_label(source: str) -> str:
    """How a feature source is named in column titles (``attention`` is the q·k logit)."""
    return "q·k" if source == "attention" else str(source)


def headline_r(data) -> int:
    """The probes' headline tolerance in patches (0 unless their recipe says otherwise; runs of
    different recipes are refused or warned about by load_runs)."""
    vals = [num(x) for x in data.probe["headline_r"]] if len(data.probe) else []
    return int(next((v for v in vals if math.isfinite(v)), 0))


def headline_tables(data, runset) -> tuple[Table, Table | None]:
    """The headline table (one row per model) and the base -> GASP delta table (or None)."""
    names = [m.name for m in runset.models.values()]
    role = {m.name: m.role for m in runset.models.values()}
    pr = {r.model: r for r in data.probe.itertuples()}
    def has(col: str) -> bool:
        return bool(len(data.probe)) and any(math.isfinite(num(v)) for v in data.probe[col])

    has_max, has_bal = has("robustness_at_max_gap"), has("gap_balanced")
    srcs = [x for x in dict.fromkeys(data.sources["source"])
            if any(math.isfinite(num(v)) for v in data.sources[data.sources["source"] == x]["peak"])]
    src_peak = {(r.model, r.source): r.peak for r in data.sources.itertuples()}
    benches = list(dict.fromkeys(data.overall["benchmark"]))
    ov = {(r.model, r.benchmark): r.overall for r in data.overall.itertuples()}
    hr = headline_r(data)
    peak_col = "Peak corr. r=0 (%)" if hr == 0 else f"Peak PCK@{hr}patch (%)"
    cols = ["Model", "Role"]
    if len(data.probe):
        cols += [peak_col, "Peak layer", "Layer mean (%)", "Vision (%)", "Chance (%)"]
        cols += [f"Peak {source_label(x)} (%)" for x in srcs]
        cols += ["Robustness (%)"] + (["Norm. PCK at max Δt (%)"] if has_max else [])
        cols += (["Gap-balanced (%)"] if has_bal else []) + ["Conf. ρ"]
    cols += [f"{b} overall" for b in benches]
    rows = []
    for n in names:
        row = [n, role[n]]
        if len(data.probe):
            p = pr.get(n)
            if p is None:
                row += [DASH] * (7 + len(srcs) + has_max + has_bal)
            else:
                row += [pct(p.peak), str(p.peak_layer) if isinstance(p.peak_layer, str) else DASH,
                        pct(p.layer_mean), pct(p.vision), pct(p.chance)]
                row += [pct(src_peak.get((n, x))) for x in srcs]
                row += [pct(p.robustness)] + ([pct(p.robustness_at_max_gap)] if has_max else [])
                row += ([pct(p.gap_balanced)] if has_bal else []) + [rho(p.conf_rho)]
        row += [pts(ov.get((n, b))) for b in benches]
        rows.append(row)
    modes = sorted(set(data.probe["mode"].dropna())) if len(data.probe) else []
    mode_note = "" if modes in ([], ["hidden"]) else \
        f"Correspondence columns use the probe's primary mode ({', '.join(modes)}). "
    why = "; ".join(f"{r.model}: robustness undefined, {r.robustness_reason}"
                    for r in data.probe.itertuples()
                    if isinstance(r.robustness_reason, str) and r.robustness_reason)
    mode_note += (why + ". ") if why else ""
    within = "at r=0 (the exact token)" if hr == 0 else f"within {hr} patches (Chebyshev, PCK@{hr}patch)"
    head = Table("Headline (measured)", cols, rows,
                 note=mode_note + f"Correspondence: nearest-neighbour patch matching accuracy {within} on the "
                      "probe's scenes (peak over LLM layers; layer mean over LLM layers; vision = "
                      "the projector output). Robustness: mean over gaps g > g_min of "
                      "acc(g)/acc(g_min) at the peak layer (normalized PCK_Δt / PCK_1 averaged over Δt" +
                      ("; 'at max Δt' is that ratio at the largest gap" if has_max else "") + ")" +
                      ("; gap-balanced: the mean over gaps of each gap's accuracy (pooled over "
                       "matches, the peak is mostly the nearest gap)" if has_bal else "") +
                      ". Benchmark overall: the benchmark's "
                      "official aggregate, x100. Conf. ρ: Spearman correlation between match "
                      "confidence and correctness at the peak layer. Probe data: "
                 + "; ".join(f"{r.model}: {integer(r.n_scenes)} scenes, {integer(r.n_pairs)} frame "
                             f"pairs, {integer(r.n_matches)} matches"
                             for r in data.probe.itertuples()) + "."
                 if len(data.probe) else "")
    if not runset.pairs:
        return head, None
    paired = {(r.benchmark, r.base, r.gasp): r for r in data.paired.itertuples()
              if r.task == "overall"}
    dcols = ["Base -> GASP"]
    if len(data.probe):
        dcols += ["Δ peak corr.", "Δ layer mean", "Δ vision"] + [f"Δ peak {source_label(x)}"
                                                                 for x in srcs]
        dcols += ["Δ robustness"]
    dcols += [f"Δ {b} overall" for b in benches]
    drows = []
    for bk, gk in runset.pairs:
        b, g = runset.name(bk), runset.name(gk)
        row = [f"{b} -> {g}"]
        if len(data.probe):
            pb, pg = pr.get(b), pr.get(g)
            row += [delta(getattr(pb, k, None), getattr(pg, k, None), 100.0)
                    for k in ("peak", "layer_mean", "vision")]
            row += [delta(src_peak.get((b, x)), src_peak.get((g, x)), 100.0) for x in srcs]
            row += [delta(getattr(pb, "robustness", None), getattr(pg, "robustness", None), 100.0)]
        for bm in benches:
            p = paired.get((bm, b, g))
            star = "*" if p is not None and bool(p.significant) else ""
            row.append(delta(ov.get((b, bm)), ov.get((g, bm))) + star)
        drows.append(row)
    dtable = Table("Base -> GASP deltas (measured, points)", dcols, drows,
                   note="GASP minus base, in percentage points; pairs come from the train runs "
                        "(base model -> output model)." + (
                            " *: the paired bootstrap 95% interval of the benchmark delta excludes "
                            "zero (intervals in the benchmark tables)." if benches else ""))
    return head, dtable


def bench_tables(data, runset) -> list[Table]:
    """Per benchmark: score per question type per model (with its 95% interval when the run has
    one), the baselines beside them, the paired deltas (``*`` where the paired interval excludes
    zero), and All-Angles' paired consistency."""
    tables = []
    names = [m.name for m in runset.models.values()]
    for b in dict.fromkeys(data.bench["benchmark"].tolist() + data.overall["benchmark"].tolist()):
        d = data.bench[data.bench["benchmark"] == b]
        o = data.overall[data.overall["benchmark"] == b]
        models = [n for n in names if n in set(d["model"]) | set(o["model"])]
        pairs = [(runset.name(x), runset.name(y)) for x, y in runset.pairs
                 if runset.name(x) in models and runset.name(y) in models]
        base_d = data.baselines[data.baselines["benchmark"] == b]
        # one column per baseline: chance, frequency, then each model's blind pass
        bl = {}
        for r in base_d.itertuples():
            col = r.baseline if not isinstance(r.model, str) else f"{r.baseline} ({r.model})"
            bl[(col, r.task)] = r.score
        baselines = [c for c in dict.fromkeys(k for k, _ in bl)
                     if any(math.isfinite(num(v)) for (k, _), v in bl.items() if k == c)]
        sc = {(r.model, r.task): r for r in d.itertuples()}
        ns = {r.task: r.n for r in d.itertuples() if math.isfinite(num(r.n))}
        pd_ = data.paired[data.paired["benchmark"] == b]
        paired = {(r.base, r.gasp, r.task): r for r in pd_.itertuples()}
        cols = ["Question type", "n"] + models + [f"baseline: {x}" for x in baselines] \
            + [f"Δ {g}" for _, g in pairs]
        rows = []
        ov = {r.model: r for r in o.itertuples()}
        tasks = list(dict.fromkeys(d["task"]))
        for task in tasks + ["overall"]:
            if task == "overall":
                n_all = next((r.n for r in o.itertuples() if math.isfinite(num(r.n))), None)
                row = ["overall", integer(n_all)]
                row += [pts(getattr(ov.get(m), "overall", None))
                        + interval(getattr(ov.get(m), "ci_low", None), getattr(ov.get(m), "ci_high", None))
                        for m in models]
            else:
                row = [task, integer(ns.get(task))]
                row += [pts(getattr(sc.get((m, task)), "score", None))
                        + interval(getattr(sc.get((m, task)), "ci_low", None),
                                   getattr(sc.get((m, task)), "ci_high", None)) for m in models]
            row += [pts(bl.get((x, task))) for x in baselines]
            for bb, gg in pairs:
                p = paired.get((bb, gg, task))
                if p is not None and math.isfinite(num(p.delta)):
                    row.append(f"{num(p.delta):+.1f}" + ("*" if p.significant else "")
                               + interval(p.ci_low, p.ci_high)
                               + (f" p={num(p.p):.3g}" if math.isfinite(num(p.p)) else ""))
                elif task == "overall":
                    row.append(delta(getattr(ov.get(bb), "overall", None),
                                     getattr(ov.get(gg), "overall", None)))
                else:
                    row.append(delta(getattr(sc.get((bb, task)), "score", None),
                                     getattr(sc.get((gg, task)), "score", None)))
            rows.append(row)
        fails = [f"{m}: {integer(r.n_failed)} failed, {integer(r.parse_failures)} unparsed"
                 for m, r in ov.items()]
        note = "n = questions of that type; overall = the benchmark's official aggregate. "
        if any(math.isfinite(num(getattr(r, "ci_low", None))) for r in ov.values()):
            note += "[lo, hi]: bootstrap 95% interval. "
        said = {"chance": "chance = a uniform guess over the options",
                "frequency": "frequency = always the most frequent answer of the question type",
                "blind": "blind = the same model without images or video"}
        kinds = [k for k in said if any(c == k or c.startswith(f"{k} (") for c in baselines)]
        if kinds:
            note += "Baselines: " + "; ".join(said[k] for k in kinds) + ". "
        if paired:
            note += ("Δ: GASP minus base on the same questions; * = the paired bootstrap 95% "
                     "interval [lo, hi] excludes zero; p = McNemar's exact test (multiple "
                     "choice). ")
        scorers = sorted({r.scorer for r in ov.values() if isinstance(r.scorer, str) and r.scorer
                          and r.scorer != "generate"})
        how = "".join(f"; scorer: {x}" + (" (NON-official)" if x == "likelihood" else "")
                      for x in scorers)
        tables.append(Table(f"{b}: score per question type (x100, measured{how})", cols, rows,
                            note=note + "; ".join(fails)))
        pc = data.consistency[data.consistency["benchmark"] == b] \
            if data.consistency is not None else None
        if pc is not None and len(pc):
            pm = [m for m in models if m in set(pc["model"])]
            v = {(r.model, r.category): r for r in pc.itertuples()}
            ccols = ["Category", "pairs"] + [f"{m} {k}" for m in pm for k in ("CC", "WW", "IC")]
            crows = []
            for cat in dict.fromkeys(pc["category"]):
                first = next((v[(m, cat)] for m in pm if (m, cat) in v), None)
                row = [cat, integer(first.pairs if first is not None else None)]
                for m in pm:
                    r = v.get((m, cat))
                    row += [pts(getattr(r, k, None)) for k in ("CC", "WW", "IC")]
                crows.append(row)
            tables.append(Table(f"{b}: paired consistency (%, measured)", ccols, crows,
                                note="Per question pair (pair_idx): CC both correct, WW both wrong, "
                                     "IC inconsistent; percent of that category's pairs."))
    return tables


SCALE_NOTE = (
    "What this scale can and cannot show. The default loop's models are tiny and randomly "
    "initialised, and its benchmarks are synthetic questions written from held-out scenes: the "
    "numbers test that the pipeline measures, compares and scores correctly, not how a real VLM "
    "performs. Tiny random models rarely produce a parseable free-form answer, so a multiple-choice "
    "score may come from the non-official likelihood scorer (the option the model finds most "
    "likely, lm-evaluation-harness style); such a score is not comparable with a published one. "
    "With a few dozen questions per task a bootstrap interval spans tens of points: a delta is only "
    "evidence where its paired interval excludes zero (marked *), and a score inside the "
    "chance/frequency/blind baselines says nothing about spatial understanding.")


def needs_scale_note(data, runset) -> bool:
    """True when the benchmark numbers come from tiny models or the non-official likelihood
    scorer: the report then says what that scale can and cannot show."""
    from gaspprobe.models.tiny import read_meta

    def tiny(m) -> bool:
        if m.model.startswith("tiny:"):
            return True
        p = Path(m.model)
        try:
            return p.is_dir() and read_meta(p) is not None
        except GaspError:  # an unreadable meta file: not known to be tiny
            return False

    models = list(runset.models.values())
    tiny_keys = {m.key for m in models if tiny(m)}
    tiny_keys |= {m.key for m in models if m.base_key in tiny_keys}
    bench_models = {r.model_key for r in runset.of_kind("bench")}
    likelihood = any(x == "likelihood" for x in data.overall["scorer"])
    return likelihood or bool(tiny_keys & bench_models)


def paper_table() -> Table:
    return Table("Reported in the GASP paper (Yeh et al., CVPR 2026)", ["Claim", "Paper", "Refers to"],
                 [list(r) for r in PAPER_REFERENCE],
                 note="Reference only: the paper's models are 7B VLMs trained on DL3DV at scale; "
                      "these numbers were not measured by this report and are never mixed into the "
                      "measured tables above.")


def models_table(runset) -> Table:
    kinds: dict[str, list[str]] = {}
    for r in runset.runs:
        kinds.setdefault(r.model_key, []).append(r.kind + (f":{r.benchmark}" if r.benchmark else ""))
    rows = []
    for m in runset.models.values():
        base = runset.name(m.base_key) if m.base_key else DASH
        rows.append([m.name, m.role, base, m.model, ", ".join(kinds.get(m.key, [])) or DASH])
    return Table("Models", ["Name", "Role", "Base", "Model (as given)", "Runs"], rows)


def runs_table(runset) -> Table:
    rows = []
    for r in runset.runs:
        m = r.manifest
        what = r.benchmark or ""
        rows.append([str(r.path), r.kind + (f" ({what})" if what else ""), runset.name(r.model_key)
                     if r.kind != "train" else f"{runset.name(r.model_key)} (base)",
                     str(m.get("seed", DASH)), str(m.get("git_sha") or DASH)[:10],
                     str(m.get("created", DASH))])
    return Table("Runs", ["Folder", "Kind", "Model", "Seed", "git sha", "Created"], rows)


# --------------------------------------------------------------------------- figures
def figures(data, runset, figdir: Path, *, paper: bool, formats: tuple[str, ...],
            paper_figure: Callable | None = None) -> tuple[list[FigureRef], list[FigureRef]]:
    """Draw and save the report's figures into ``figdir``.

    ``paper_figure``: ``draw(figdir) -> {format: path}`` for the paper-layout figure (or None).

    Returns:
        ``(top, rest)``: the paper-layout figure (shown first in the report; empty when no probe
        run has the per-layer PCK@2patch data it needs) and the other figures, in report order.
    """
    pal = runset.palette
    top: list[FigureRef] = []
    figs: list[FigureRef] = []

    def save(fig, name: str, title_: str, caption: str, into: list[FigureRef]) -> None:
        paths = plots.save_figure(fig, figdir, name, formats)
        into.append(FigureRef(title_, f"figures/{name}.png", caption,
                              f"figures/{name}.pdf" if "pdf" in paths else None))

    hr = headline_r(data)
    if paper_figure is not None:
        paths = paper_figure(figdir)
        if "png" in paths:
            top.append(FigureRef(
                "Diagnostic in the paper's layout", f"figures/{Path(paths['png']).name}",
                f"(a) matching accuracy PCK@{hr}patch per LLM layer with chance; (b) confidence-"
                "accuracy correlation ρ per layer; (c) normalized PCK (PCK_Δt / PCK_1) against "
                "frame distance Δt at each model's peak layer, with robustness and the ratio at the "
                "largest Δt in the legend. Measured on this report's probe runs; not the paper's "
                "numbers." + (f" Left out (no matches to score): {', '.join(paths['left_out'])}."
                              if paths.get("left_out") else ""),
                f"figures/{Path(paths['pdf']).name}" if "pdf" in paths else None))
    # the headline tolerance of the probes (r = 0, or 2 = PCK@2patch): the curves, the chance line
    # and the peak all at that one tolerance
    chance = {r.model: r.chance for r in data.probe.itertuples()}
    for mode in dict.fromkeys(["hidden"] + data.corr["mode"].tolist()):
        label = "hidden states" if mode == "hidden" else f"{source_label(mode)} features" \
            if mode != "attention" else "attention q·k"
        c = data.corr[(data.corr["mode"] == mode) & (data.corr["r"] == f"r{hr}")]
        if len(c):
            save(plots.accuracy_vs_layer_figure(c, pal, chance=chance, paper=paper,
                                                title=f"Correspondence accuracy (r={hr}, {label})"),
                 f"accuracy_vs_layer_{mode}", f"Correspondence accuracy vs layer ({label})",
                 "Solid: each LLM layer; dashed: the vision-tower output (projector) in the model's "
                 "colour; dotted grey: chance (1 / tokens per frame)."
                 + (" Dark-red dash-dot lines are the paper's reported numbers, not measurements."
                    if paper else ""), figs)
    if len(data.gaps):
        save(plots.accuracy_vs_gap_figure(data.gaps, pal), "accuracy_vs_gap",
             "Accuracy vs frame gap", f"Accuracy (r={hr}) at each model's own peak layer.",
             figs)
    rob = data.probe[["model", "robustness"]].dropna()
    if len(rob):
        save(plots.robustness_figure(rob, pal, paper=paper), "robustness", "Temporal robustness",
             "Mean over gaps g > g_min of acc(g)/acc(g_min) at the peak layer."
             + (" The dark-red line is the paper's reported GASP value." if paper else ""), figs)
    if len(data.depth):
        rel = sorted(set(data.depth.loc[~data.depth["metric"].astype(bool), "model"]))
        save(plots.depth_figure(data.depth, pal), "depth_probe", "Depth probe vs layer",
             "Closed-form ridge regression from image-token features to log patch depth, scored on "
             "held-out scenes; dashed: vision-tower output."
             + (f" Depth not metric for {', '.join(rel)}: fitted on centred log depth and scored after "
                "median scaling (relative depth only)." if rel else ""), figs)
    pairs = [(runset.name(b), runset.name(g)) for b, g in runset.pairs]
    for b in dict.fromkeys(data.bench["benchmark"]):
        d = data.bench[data.bench["benchmark"] == b]
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", b)
        save(plots.benchmark_figure(d, pal, pairs, benchmark=b,
                                    baselines=data.baselines[data.baselines["benchmark"] == b]),
             f"benchmark_{safe}", f"{b} per question type",
             "Scores x100 with the run's bootstrap 95% interval; the number after a GASP bar is "
             "its delta to its base model in points; grey ticks: the chance and most-frequent-"
             "answer baselines of each question type.", figs)
    if len(data.loss):
        save(plots.loss_figure(data.loss, pal), "training_loss", "Training losses",
             "Every loss column of each train run's train_log.csv, coloured by the model it "
             "produced.", figs)
    return top, figs


# --------------------------------------------------------------------------- sections
def build_sections(data, runset, top: list[FigureRef], figs: list[FigureRef], *,
                   paper: bool) -> list[Section]:
    """The report's sections, in order: warnings, the paper-layout figure, headline, the paper's
    numbers, figures, benchmarks, models and runs."""
    head, dtable = headline_tables(data, runset)
    sections = []
    if data.warnings:
        sections.append(Section("Warnings",
                                list(data.warnings), kind="warning", anchor="warnings"))
    if top:
        sections.append(Section("Diagnostic (the paper's layout, measured here)", list(top),
                                anchor="diagnostic"))
    sections.append(Section("Headline", [head] + ([dtable] if dtable else []), anchor="headline"))
    if paper:
        sections.append(Section("Reported in the paper", [paper_table()], kind="paper",
                                anchor="paper"))
    if figs:
        sections.append(Section("Figures", list(figs), anchor="figures"))
    bt = bench_tables(data, runset)
    if bt:
        note = [SCALE_NOTE] if needs_scale_note(data, runset) else []
        sections.append(Section("Benchmarks per question type", note + list(bt),
                                anchor="benchmarks"))
    sections.append(Section("Models and runs", [models_table(runset), runs_table(runset)],
                            kind="info", anchor="runs"))
    return sections
