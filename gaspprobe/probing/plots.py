"""The probe run's own figures (written atomically beside ``summary.json``).

- ``accuracy_vs_layer.png``: correspondence accuracy (r=0 solid, other r dashed; hidden and,
  when it ran, attention mode) against layer, with the chance level and the ``vision`` layer's
  accuracy as horizontal reference lines;
- ``accuracy_vs_gap.png``: headline accuracy (PCK@r, r = the recipe's ``headline_r``) against
  frame gap at the peak layer, with chance;
- :func:`paper_figure`: the GASP paper's analysis figure for any number of probe runs (one row per
  group of runs, three panels: PCK per LLM layer, confidence-accuracy rho per layer, normalized
  PCK_Δt / PCK_1 against Δt at each run's peak layer), PNG + PDF. The report puts it on top.

Every plot names the tolerance and the patch unit (LLM token or vision patch) it was measured in.
Other cross-run comparison figures belong to :mod:`gaspprobe.reporting`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gaspprobe import io


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _num(v):
    return float("nan") if v is None else float(v)


def plot_accuracy_vs_layer(summary: dict, path: "str | Path") -> Path:
    """Accuracy vs layer with chance and vision lines -> ``path`` (PNG)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.4), dpi=120)
    blocks = [("hidden" if summary.get("mode", "hidden") == "hidden" else summary["mode"], summary)]
    if "attention" in summary and summary.get("mode") != "attention":
        blocks.append(("attention", summary["attention"]))
    colours = {"hidden": "tab:blue", "attention": "tab:orange"}
    for mode, b in blocks:
        acc = b.get("accuracy", {})
        for rk, vals in acc.items():
            layers = [l for l in vals if l.startswith("llm.")]
            if not layers:
                continue
            xs = [int(l.split(".")[1]) for l in layers]
            ax.plot(xs, [_num(vals[l]) for l in layers], marker="o", ms=3,
                    ls="-" if rk == "r0" else "--", color=colours.get(mode, "tab:green"),
                    label=f"{mode} {rk.replace('r', 'r=')}")
        v = b.get("vision_accuracy")
        if v is not None:
            ax.axhline(_num(v), color=colours.get(mode, "tab:green"), ls=":", lw=1,
                       label=f"{mode} vision (r=0)")
    if summary.get("chance") is not None:
        ax.axhline(summary["chance"], color="grey", ls="-.", lw=1, label="chance (r=0)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("LLM layer")
    ax.set_ylabel("correspondence accuracy")
    ax.text(0.99, 0.01, "patch = " + ("LLM token" if summary.get("patch_unit", "llm_token") == "llm_token"
                                      else "vision patch"), transform=ax.transAxes, ha="right", va="bottom",
            fontsize=6, color="grey")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{summary.get('model', '')}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def _unit(summary: dict) -> str:
    hr = int(summary.get("headline_r", 0) or 0)
    unit = "LLM token" if summary.get("patch_unit", "llm_token") == "llm_token" else "vision patch"
    return f"PCK@{hr} (patch = {unit})"


def plot_accuracy_vs_gap(summary: dict, path: "str | Path") -> Path:
    """Headline accuracy vs frame gap at the peak layer (every feature source) -> ``path`` (PNG)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    blocks = [(summary.get("mode", "hidden"), summary)]
    blocks += [(k, v) for k, v in summary.items() if isinstance(v, dict) and "accuracy_by_gap" in v]
    for mode, b in blocks:
        bg = b.get("accuracy_by_gap") or {}
        if not bg:
            continue
        gaps = sorted(int(g) for g in bg)
        rob = b.get("robustness")
        lab = f"{mode} @ {b.get('peak_layer')}" + (f" (robustness {rob:.2f})" if rob is not None else "")
        ax.plot(gaps, [_num(bg[str(g)]) for g in gaps], marker="o", label=lab)
    ch = summary.get("headline_chance", summary.get("chance"))
    if ch is not None:
        ax.axhline(ch, color="grey", ls="-.", lw=1, label="chance")
    all_gaps = sorted({int(g) for _, b in blocks for g in (b.get("accuracy_by_gap") or {})})
    if all_gaps:
        ax.set_xticks(all_gaps)
    ax.set_xlabel("frame distance Δt (clip frames)")
    ax.set_ylabel(_unit(summary), fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def write_figures(summary: dict, out: "str | Path") -> list[Path]:
    out = Path(out)
    return [plot_accuracy_vs_layer(summary, out / "accuracy_vs_layer.png"),
            plot_accuracy_vs_gap(summary, out / "accuracy_vs_gap.png")]


# --------------------------------------------------------------------------- the paper's figure
PAPER_TICKS = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 18, 20, 22, 24]
_COLORS = {"base": "#1f5fbf", "gasp": "#e0531f"}
_CYCLE = ["#2e8b3e", "#8e44ad", "#c28f00", "#17a2b8", "#7f7f7f"]


def _resolve_run(run: Any) -> tuple[str, dict]:
    """(legend label, summary dict) from a run folder, a ProbeResult, a (label, summary) pair or a
    summary dict. The label is the manifest's ``model_label`` when there is one, else the model."""
    if isinstance(run, tuple) and len(run) == 2:
        return str(run[0]), dict(run[1])
    if isinstance(run, dict):
        return str(run.get("model_label") or run.get("model")), run
    if hasattr(run, "summary") and hasattr(run, "table"):
        lab = None
        if getattr(run, "out", None) is not None and (Path(run.out) / io.MANIFEST).is_file():
            lab = io.read_manifest(run.out).get("model_label")
        return str(lab or run.summary.get("model")), run.summary
    p = Path(run)
    m = io.read_manifest(p, kind="probe")
    s = io.read_json(p / "summary.json")
    return str(m.get("model_label") or Path(str(s.get("model"))).name or s.get("model")), s


def _llm_series(vals: dict) -> tuple[list[int], list[float]]:
    layers = sorted((int(l.split(".")[1]), l) for l in vals if str(l).startswith("llm."))
    return [i for i, _ in layers], [_num(vals[l]) for _, l in layers]


def paper_figure(runs: Any, out: "str | Path", *, stem: str = "paper_figure",
                 row_titles: list[str] | None = None) -> list[Path]:
    """The GASP paper's analysis figure (its assets/analysis.png layout) -> ``out/stem.png`` + ``.pdf``.

    Args:
        runs: probe runs (folders, :class:`~gaspprobe.probing.run.ProbeResult`, ``(label, summary)``
            pairs or summaries): a flat list draws one row; a list of lists (or a dict
            ``{row title: runs}``) draws one row per group, e.g. one per base model with its
            trained variants.
        out: the folder to write into.
        row_titles: titles of the rows (default: the dict keys, else the first run's model).

    Columns: (a) PCK@r per LLM layer (bars + line per run, r = the runs' ``headline_r``; chance
    dashed), (b) confidence-accuracy Spearman rho per layer, (c) normalized PCK_Δt / PCK_1 against
    Δt at each run's peak layer (robustness and PCK_max/PCK_1 in the legend). Returns both paths.
    """
    plt = _plt()
    if isinstance(runs, dict):
        row_titles = row_titles or list(runs)
        groups = list(runs.values())
    elif runs and isinstance(runs, (list, tuple)) and all(isinstance(r, (list, tuple)) and not
                                                          (len(r) == 2 and isinstance(r[1], dict)) for r in runs):
        groups = [list(g) for g in runs]
    else:
        groups = [list(runs)]
    rows = [[_resolve_run(r) for r in g] for g in groups]
    if not rows or not any(rows):
        from gaspprobe.errors import DataError

        raise DataError("paper_figure: no probe runs given")
    fig, axes = plt.subplots(len(rows), 3, figsize=(16, 4.4 * len(rows)), dpi=150, squeeze=False,
                             gridspec_kw={"width_ratios": [1.25, 1.0, 0.9]})
    letters = "abcdefghijklmnopqrstuvwxyz"
    for ri, row in enumerate(rows):
        ax_a, ax_b, ax_c = axes[ri]
        s0 = row[0][1]
        hr = int(s0.get("headline_r", 0) or 0)
        unit = "patch" if s0.get("patch_unit", "llm_token") == "llm_token" else "vision patch"
        colors, ci = [], 0
        for label, _ in row:
            col = _COLORS.get(label)
            if col is None:
                col = _CYCLE[ci % len(_CYCLE)]
                ci += 1
            colors.append(col)
        order = sorted(range(len(row)), key=lambda k: -(_num(row[k][1].get("peak_accuracy")) or 0))
        for k in order:  # the tallest bars first, so smaller ones stay visible in front
            label, s = row[k]
            col = colors[k]
            dashed = label == "base"
            xs, ys = _llm_series((s.get("accuracy") or {}).get(f"r{hr}", {}))
            if xs:
                ax_a.bar(xs, ys, width=1.0, color=col, alpha=0.3, edgecolor=col, lw=0.5)
                ax_a.plot(xs, ys, color=col, marker="o", ms=2.5, lw=1.6, ls="--" if dashed else "-",
                          label=f"{label} (peak {_num(s.get('peak_accuracy')):.2f} @ {s.get('peak_layer')})")
            xs, ys = _llm_series(s.get("confidence_spearman") or {})
            if xs:
                ax_b.plot(xs, ys, color=col, marker="o", ms=2.5, lw=1.6, ls="--" if dashed else "-", label=label)
            ratios = s.get("robustness_ratios") or {}
            if ratios:
                gs = sorted(int(g) for g in ratios)
                rob, mx = s.get("robustness"), s.get("robustness_at_max_gap")
                extra = (f"rob. {rob:.2f}" if rob is not None else "rob. n/a") + (
                    f", PCK$_{{{gs[-1]}}}$/PCK$_{{{gs[0]}}}$ {mx:.2f}" if mx is not None else "")
                ax_c.plot(gs, [_num(ratios[str(g)]) for g in gs], color=col, lw=1.8, ls="--" if dashed else "-",
                          label=f"{label} ({extra})")
            elif s.get("robustness_reason"):
                ax_c.plot([], [], color=col, ls="--" if dashed else "-",
                          label=f"{label} (n/a: {s['robustness_reason'][:40]})")
        chances = [(lab, c, s.get("headline_chance", s.get("chance"))) for (lab, s), c in zip(row, colors)]
        chances = [x for x in chances if x[2] is not None]
        if chances and max(c for *_, c in chances) - min(c for *_, c in chances) < 1e-9:
            ax_a.axhline(chances[0][2], color="grey", ls=":", lw=1.2, label=f"chance ({chances[0][2]:.3f})")
        else:  # different grids, different chance: one line per run, in its colour
            for lab, col, c in chances:
                ax_a.axhline(c, color=col, ls=":", lw=1.0, label=f"chance, {lab} ({c:.3f})")
        ax_a.set_ylabel(f"Matching Accuracy (PCK@{hr}{unit})", fontsize=9, fontweight="bold")
        ax_a.set_xlabel("LLM layer (ℓ)", fontsize=9, fontweight="bold")
        ax_a.set_ylim(0, None)
        from matplotlib.ticker import MaxNLocator

        for ax in (ax_a, ax_b):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_a.legend(fontsize=7, loc="upper left")
        ax_b.axhline(0, color="grey", ls="--", lw=0.8)
        ax_b.set_ylabel("Confidence-Accuracy Correlation (ρ)", fontsize=9, fontweight="bold")
        ax_b.set_xlabel("LLM layer (ℓ)", fontsize=9, fontweight="bold")
        ax_b.legend(fontsize=7, loc="upper left")
        ax_c.set_ylabel("Normalized PCK (PCK$_{Δt}$/PCK$_1$)", fontsize=9, fontweight="bold")
        ax_c.set_xlabel("Frame Distance (Δt)", fontsize=9, fontweight="bold")
        gaps = [int(g) for g in s0.get("gaps") or []]
        ticks = [t for t in PAPER_TICKS if not gaps or t <= max(gaps)] if gaps and max(gaps) > 8 else gaps
        if ticks:
            ax_c.set_xticks(ticks)
            ax_c.set_xlim(min(ticks), max(ticks))
        ax_c.set_ylim(0, 1.1)
        ax_c.grid(alpha=0.3)
        ax_c.legend(fontsize=7, loc="lower left")
        for j, ax in enumerate((ax_a, ax_b, ax_c)):
            ax.text(0.5, -0.3, f"({letters[(3 * ri + j) % 26]})", transform=ax.transAxes, ha="center",
                    va="top", fontsize=11)
        title = (row_titles[ri] if row_titles and ri < len(row_titles)
                 else Path(str(s0.get("model"))).name)
        import textwrap

        ax_a.annotate("\n".join(textwrap.wrap(str(title), 30)), xy=(-0.2, 0.5), xycoords="axes fraction",
                      rotation=90, ha="center", va="center", fontsize=12)
    for j, t in enumerate(("Correspondence Matching", "Confidence-Accuracy Correlation", "Temporal Robustness")):
        axes[0][j].set_title(t, fontsize=13, pad=10)
    fig.tight_layout()
    out = Path(out)
    paths = []
    for ext in ("png", "pdf"):
        p = out / f"{stem}.{ext}"
        with io.atomic_path(p) as tmp:
            fig.savefig(tmp, format=ext)
        paths.append(p)
    plt.close(fig)
    return paths
