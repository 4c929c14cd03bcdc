"""The report's seaborn figures, sized for a paper column (3.4 in wide) and saved as PNG + PDF.

Each ``*_figure`` function takes a tidy DataFrame (built by :mod:`gaspprobe.reporting.report`) and
a ``palette`` {model display name: colour} shared by every figure, and returns a matplotlib
``Figure`` (built without pyplot, so no global state and no display is touched). :func:`save_figure`
writes it atomically. Numbers the GASP paper reports are drawn as thin dark-red dash-dot lines whose
labels start with "paper:", never as data points.

Accuracies arrive as fractions and are drawn in percent; benchmark scores arrive x100.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Iterator

from gaspprobe import io

COLUMN_IN = 3.4          # one paper column
PAPER_COLOR = "#8b0000"  # reference lines from the paper: one colour, one style, always labelled
PAPER_STYLE = dict(color=PAPER_COLOR, linestyle="-.", linewidth=0.9, alpha=0.9, zorder=1)
DPI = 200

# The GASP paper's reported numbers (README + abstract of arXiv 2605.30231; see
# ../shared/research/benchmarks.md §4.6). Reference only, never measured here.
PAPER_PEAK_CORR = 70.0        # GASP: peak layer-wise correspondence > 70 %
PAPER_BASELINE_CORR = 5.0     # off-the-shelf: < 5 %
PAPER_ROBUSTNESS = 85.0       # GASP: temporal robustness > 85 % (at a 24-frame gap)


@contextlib.contextmanager
def _style() -> Iterator[None]:
    import matplotlib as mpl
    import seaborn as sns

    rc = {"font.size": 7, "axes.titlesize": 7.5, "axes.labelsize": 7, "xtick.labelsize": 6.5,
          "ytick.labelsize": 6.5, "legend.fontsize": 6.2, "lines.linewidth": 1.3,
          "lines.markersize": 3.5, "axes.linewidth": 0.6, "grid.linewidth": 0.4,
          "pdf.fonttype": 42}  # TrueType in PDFs, so journals accept the fonts
    with sns.axes_style("whitegrid"), mpl.rc_context(rc):
        yield


def _figure(height: float, width: float = COLUMN_IN, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _legend_below(fig, ax, ncol: int = 2, handles=None) -> None:
    h, lab = ax.get_legend_handles_labels() if handles is None else handles
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if h:
        fig.legend(h, lab, loc="outside lower center", ncol=ncol, frameon=False,
                   handlelength=2.2, columnspacing=1.0)


def _ncol(n: int) -> int:
    return 1 if n <= 1 else (2 if n <= 6 else 3)


def accuracy_vs_layer_figure(corr, palette: dict, *, chance: dict | None = None,
                             title: str = "Correspondence accuracy (r=0)", paper: bool = True):
    """Accuracy [%] vs LLM layer per model; the vision-tower output as a dashed line in the model's
    colour, chance as a grey dotted line, the paper's >70 % / <5 % as labelled reference lines.

    Args:
        corr: rows ``model, layer_index, accuracy`` (fraction; ``layer_index`` None = vision).
        palette: model display name -> colour.
        chance: model display name -> chance fraction.
    """
    import seaborn as sns

    with _style():
        fig, (ax,) = _figure(2.6)
        llm = corr[corr["layer_index"].notna()].copy()
        llm["acc"] = 100 * llm["accuracy"]
        models = [m for m in palette if m in set(corr["model"])]
        if len(llm):
            sns.lineplot(data=llm, x="layer_index", y="acc", hue="model", hue_order=models,
                         palette=palette, marker="o", markeredgewidth=0, errorbar=None, ax=ax)
        vis = corr[corr["layer_index"].isna()]
        for m in models:
            v = vis[vis["model"] == m]["accuracy"].dropna()
            if len(v):
                ax.axhline(100 * float(v.iloc[0]), color=palette[m], linestyle="--", linewidth=0.9,
                           label=f"{m}: vision", zorder=1)
        for i, c in enumerate(sorted({round(100 * v, 6) for v in (chance or {}).values()
                                      if v is not None and math.isfinite(v)})):
            ax.axhline(c, color="0.45", linestyle=":", linewidth=1.0,
                       label="chance" if i == 0 else None, zorder=1)
        # The axis fits the measured data (plus the 5 % reference line); a paper line above it is
        # kept in the legend, marked "off scale", rather than squashing the data into a sliver.
        top_data = max([float(llm["acc"].max()) if len(llm) else 0.0]
                       + [100 * float(v) for v in vis["accuracy"].dropna()])
        top = min(100.0, max(1.15 * top_data, 10.0))
        if paper:
            top = max(top, 1.4 * PAPER_BASELINE_CORR)
            off = PAPER_PEAK_CORR > top
            ax.axhline(PAPER_PEAK_CORR, label="paper: GASP peak > 70%" + (" (off scale, above)"
                                                                          if off else ""),
                       **PAPER_STYLE)
            ax.axhline(PAPER_BASELINE_CORR, label="paper: off-the-shelf < 5%",
                       **{**PAPER_STYLE, "linestyle": (0, (1, 1.5))})
        ax.set_ylim(0, top)
        ax.set_xlabel("LLM layer")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        if len(llm):
            ax.xaxis.get_major_locator().set_params(integer=True)
        _legend_below(fig, ax, ncol=2)
    return fig


def accuracy_vs_gap_figure(gaps, palette: dict, *, title: str = "Accuracy vs frame gap at each "
                           "model's peak layer"):
    """Accuracy [%] vs frame gap per model (at that model's peak layer).

    Args:
        gaps: rows ``model, gap, accuracy`` (fraction).
    """
    import seaborn as sns

    with _style():
        fig, (ax,) = _figure(2.4)
        d = gaps.copy()
        d["acc"] = 100 * d["accuracy"]
        models = [m for m in palette if m in set(d["model"])]
        sns.lineplot(data=d, x="gap", y="acc", hue="model", hue_order=models, palette=palette,
                     marker="o", markeredgewidth=0, errorbar=None, ax=ax)
        gs = sorted(d["gap"].dropna().unique())
        if gs and gs[-1] / max(gs[0], 1e-9) >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(gs, [f"{g:g}" for g in gs])
        ax.minorticks_off()
        ax.set_ylim(0, max(5.0, 1.1 * float(d["acc"].max())) if len(d) else 100)
        ax.set_xlabel("frame gap")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        _legend_below(fig, ax, ncol=_ncol(len(models)))
    return fig


def robustness_figure(rob, palette: dict, *, paper: bool = True):
    """Temporal robustness [%] per model as horizontal bars, the paper's > 85 % as a line.

    Args:
        rob: rows ``model, robustness`` (fraction: mean over gaps > g_min of acc(g) / acc(g_min)).
    """
    with _style():
        d = rob.dropna(subset=["robustness"])
        models = [m for m in palette if m in set(d["model"])]
        fig, (ax,) = _figure(0.9 + 0.28 * max(len(models), 1))
        vals = [100 * float(d[d["model"] == m]["robustness"].iloc[0]) for m in models]
        ax.barh(range(len(models)), vals, color=[palette[m] for m in models], height=0.65)
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.1f}", va="center", ha="left", fontsize=6.3)
        ax.set_yticks(range(len(models)), models)
        ax.invert_yaxis()
        top = max([110.0] + [v * 1.15 for v in vals])
        ax.set_xlim(0, top)
        if paper:
            ax.axvline(PAPER_ROBUSTNESS, label="paper: GASP > 85% (24-frame gap)", **PAPER_STYLE)
            _legend_below(fig, ax, ncol=1)
        ax.set_xlabel("temporal robustness (%): mean acc(g) / acc(g_min)")
        ax.set_title("Temporal robustness at the peak layer")
        ax.grid(axis="y", visible=False)
    return fig


def depth_figure(depth, palette: dict):
    """Linear depth-probe scores vs LLM layer: AbsRel (lower is better) and delta<1.25 (higher).

    Args:
        depth: rows ``model, layer_index, absrel, delta1`` (``layer_index`` None = vision).
    """
    import seaborn as sns

    with _style():
        fig, axes = _figure(2.3, ncols=2)
        llm = depth[depth["layer_index"].notna()]
        vis = depth[depth["layer_index"].isna()]
        models = [m for m in palette if m in set(depth["model"])]
        for ax, col, lab in ((axes[0], "absrel", "AbsRel (lower better)"),
                             (axes[1], "delta1", "δ<1.25 (higher better)")):
            d = llm.dropna(subset=[col])
            if len(d):
                sns.lineplot(data=d, x="layer_index", y=col, hue="model", hue_order=models,
                             palette=palette, marker="o", markeredgewidth=0, errorbar=None, ax=ax)
            for m in models:
                v = vis[vis["model"] == m][col].dropna()
                if len(v):
                    ax.axhline(float(v.iloc[0]), color=palette[m], linestyle="--", linewidth=0.9,
                               label=f"{m}: vision", zorder=1)
            ax.set_xlabel("LLM layer")
            ax.set_ylabel(lab)
            if col == "delta1":
                ax.set_ylim(0, 1.02)
            else:
                ax.set_ylim(bottom=0)
            if len(d):
                ax.xaxis.get_major_locator().set_params(integer=True)
        handles = axes[0].get_legend_handles_labels()
        for ax in axes[1:]:
            if ax.get_legend() is not None:
                ax.get_legend().remove()
        fig.suptitle("Linear depth probe per layer (held-out scenes)", fontsize=7.5)
        _legend_below(fig, axes[0], ncol=2, handles=handles)
    return fig


def benchmark_figure(bench, palette: dict, pairs: list[tuple[str, str]], *, benchmark: str,
                     baselines=None):
    """Scores per question type (x100) as grouped horizontal bars, one bar per model, with the run's
    bootstrap 95% interval as an error bar when it has one; each GASP bar carries its delta to its
    base ("+12.3"); the chance and most-frequent-answer baselines of each task as grey ticks.

    Args:
        bench: rows ``model, task, score`` (and ``ci_low, ci_high``) for one benchmark (x100).
        pairs: (base display name, GASP display name).
        benchmark: its name, for the title.
        baselines: rows ``baseline, model, task, score`` for this benchmark (x100), or None.
    """
    import numpy as np

    with _style():
        tasks = list(dict.fromkeys(bench["task"]))
        models = [m for m in palette if m in set(bench["model"])]
        n_t, n_m = len(tasks), max(len(models), 1)
        fig, (ax,) = _figure(0.9 + n_t * (0.14 + 0.13 * n_m))
        h = 0.8 / n_m
        score = {(r.model, r.task): r.score for r in bench.itertuples()}
        ci = {(r.model, r.task): (getattr(r, "ci_low", np.nan), getattr(r, "ci_high", np.nan))
              for r in bench.itertuples()}
        y = np.arange(n_t)
        for j, m in enumerate(models):
            vals = np.array([score.get((m, t), np.nan) for t in tasks], dtype=float)
            lo = np.array([ci.get((m, t), (np.nan, np.nan))[0] for t in tasks], dtype=float)
            hi = np.array([ci.get((m, t), (np.nan, np.nan))[1] for t in tasks], dtype=float)
            ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(vals)
            xerr = None
            if ok.any():
                xerr = np.vstack([np.where(ok, np.clip(vals - lo, 0, None), 0),
                                  np.where(ok, np.clip(hi - vals, 0, None), 0)])
            ax.barh(y + (j - (n_m - 1) / 2) * h, vals, height=h * 0.92, color=palette[m], label=m,
                    xerr=xerr, error_kw=dict(ecolor="0.25", elinewidth=0.6, capsize=1.2))
        marks = {"chance": dict(color="0.35", linestyle=":", label="chance"),
                 "frequency": dict(color="0.1", linestyle="--", label="most frequent answer")}
        if baselines is not None and len(baselines):
            for kind, style in marks.items():
                d = baselines[(baselines["baseline"] == kind) & baselines["model"].isna()]
                v = {r.task: r.score for r in d.itertuples()}
                first = True
                for i, t in enumerate(tasks):
                    x = v.get(t)
                    if x is None or not math.isfinite(x):
                        continue
                    ax.vlines(x, i - 0.45, i + 0.45, linewidth=0.9, zorder=3,
                              **{**style, "label": style["label"] if first else None})
                    first = False
        gasp_base = {g: b for b, g in pairs}
        for j, m in enumerate(models):
            b = gasp_base.get(m)
            if b is None or b not in models:
                continue
            for i, t in enumerate(tasks):
                v, vb = score.get((m, t)), score.get((b, t))
                if v is None or vb is None or not (math.isfinite(v) and math.isfinite(vb)):
                    continue
                top = ci.get((m, t), (np.nan, np.nan))[1]   # after the error bar, if any
                x = max(v, top) if top is not None and math.isfinite(top) else v
                ax.text(x, i + (j - (n_m - 1) / 2) * h, f" {v - vb:+.1f}", va="center",
                        ha="left", fontsize=5.8, color="0.15")
        ax.set_yticks(y, [t.replace("_", " ") for t in tasks])
        ax.invert_yaxis()
        finite = [v for v in score.values() if v is not None and math.isfinite(v)]
        ax.set_xlim(0, max([100.0] + [v * 1.18 for v in finite]) + 12)
        ax.set_xlabel("score (x100), 95% interval; label: Δ to base")
        ax.set_title(f"{benchmark}: score per question type")
        ax.grid(axis="y", visible=False)
        _legend_below(fig, ax, ncol=_ncol(len(models) + 2))
    return fig


def loss_figure(loss, palette: dict):
    """Training loss curves: one panel per loss part (``loss``, ``loss_corr``, ...), one line per
    train run in the colour of the model it produced.

    Args:
        loss: rows ``model, step, part, value``.
    """
    import seaborn as sns

    with _style():
        parts = list(dict.fromkeys(loss["part"]))
        ncols = min(len(parts), 3)
        nrows = math.ceil(len(parts) / ncols)
        from matplotlib.figure import Figure

        fig = Figure(figsize=(COLUMN_IN * (1 if ncols == 1 else 2), 0.5 + 1.55 * nrows),
                     layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        models = [m for m in palette if m in set(loss["model"])]
        # Per-step losses are noisy; long runs are drawn as a trailing k-step mean (k ~ steps/40).
        n_steps = int(loss.groupby(["model", "part"])["step"].nunique().max()) if len(loss) else 0
        k = max(1, n_steps // 40)
        for ax, part in zip(axes, parts):
            d = loss[loss["part"] == part].sort_values("step")
            if k > 1:
                d = d.assign(value=d.groupby("model")["value"].transform(
                    lambda v: v.rolling(k, min_periods=1).mean()))
            sns.lineplot(data=d, x="step", y="value", hue="model", hue_order=models,
                         palette=palette, errorbar=None, linewidth=1.0, ax=ax)
            ax.set_title(part)
            ax.set_xlabel("step")
            ax.set_ylabel("")
        for ax in axes[len(parts):]:
            ax.set_visible(False)
        handles = axes[0].get_legend_handles_labels()
        for ax in axes:
            if ax.get_legend() is not None:
                ax.get_legend().remove()
        fig.suptitle("Training losses" + (f" ({k}-step mean)" if k > 1 else ""), fontsize=7.5)
        _legend_below(fig, axes[0], ncol=_ncol(len(models)), handles=handles)
    return fig


def save_figure(fig, out_dir: str | Path, name: str, formats=("png", "pdf")) -> dict[str, Path]:
    """Save ``fig`` as ``out_dir/name.<fmt>`` for each format, each file written atomically.

    Returns:
        {format: path}.
    """
    out = {}
    for fmt in formats:
        path = Path(out_dir) / f"{name}.{fmt}"
        with io.atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, metadata=_metadata(fmt))
        out[fmt] = path
    return out


def _metadata(fmt: str) -> dict:
    # Fixed metadata so the same data gives the same bytes (no creation date in PDFs).
    if fmt == "pdf":
        return {"CreationDate": None, "Creator": "gaspprobe"}
    if fmt == "png":
        return {"Software": "gaspprobe"}
    return {}
