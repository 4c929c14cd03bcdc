"""The probe run's own figures (written atomically beside ``summary.json``).

- ``accuracy_vs_layer.png``: correspondence accuracy (r=0 solid, other r dashed; hidden and,
  when it ran, attention mode) against layer, with the chance level and the ``vision`` layer's
  accuracy as horizontal reference lines;
- ``accuracy_vs_gap.png``: r=0 accuracy against frame gap at the peak layer, with chance.

Cross-run comparison figures (base vs GASP, several models) belong to :mod:`gaspprobe.reporting`.
"""

from __future__ import annotations

from pathlib import Path

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
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{summary.get('model', '')}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def plot_accuracy_vs_gap(summary: dict, path: "str | Path") -> Path:
    """r=0 accuracy vs frame gap at the peak layer (hidden and attention) -> ``path`` (PNG)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    blocks = [(summary.get("mode", "hidden"), summary)]
    if "attention" in summary and summary.get("mode") != "attention":
        blocks.append(("attention", summary["attention"]))
    for mode, b in blocks:
        bg = b.get("accuracy_by_gap") or {}
        if not bg:
            continue
        gaps = sorted(int(g) for g in bg)
        rob = b.get("robustness")
        lab = f"{mode} @ {b.get('peak_layer')}" + (f" (robustness {rob:.2f})" if rob is not None else "")
        ax.plot(gaps, [_num(bg[str(g)]) for g in gaps], marker="o", label=lab)
    if summary.get("chance") is not None:
        ax.axhline(summary["chance"], color="grey", ls="-.", lw=1, label="chance")
    all_gaps = sorted({int(g) for _, b in blocks for g in (b.get("accuracy_by_gap") or {})})
    if all_gaps:
        ax.set_xticks(all_gaps)
    ax.set_xlabel("frame gap")
    ax.set_ylabel("accuracy (r=0)")
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
