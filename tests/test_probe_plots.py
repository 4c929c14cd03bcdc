"""The probe's figures: the paper figure for several runs, and the per-run plots naming the unit."""

from __future__ import annotations

import pytest

from gaspprobe.errors import DataError
from gaspprobe.probing.plots import _resolve_run, paper_figure, write_figures


def _summary(model, peak, hr=2, unit="llm_token", n_layers=4, rob=0.9):
    acc = {f"llm.{i}": peak * (i + 1) / n_layers for i in range(n_layers)}
    return {"model": model, "headline_r": hr, "patch_unit": unit, "gaps": list(range(1, 25)),
            "accuracy": {"r0": acc, f"r{hr}": acc}, "peak_layer": f"llm.{n_layers - 1}", "peak_accuracy": peak,
            "confidence_spearman": {l: 0.1 for l in acc}, "headline_chance": 0.08, "chance": 0.004,
            "robustness": rob, "robustness_at_max_gap": None if rob is None else rob - 0.05,
            "robustness_ratios": {str(g): 1.0 - 0.004 * (g - 1) for g in range(1, 25)},
            "accuracy_by_gap": {str(g): peak for g in range(1, 25)}, "mode": "hidden", "layers": list(acc)}


def test_paper_figure_rows_and_files(tmp_path):
    rows = {"Qwen2.5-VL-7B": [("base", _summary("q", 0.09, rob=None)), ("gasp", _summary("q", 0.69))],
            "LLaVA-NeXT-Video-7B": [("base", _summary("l", 0.08)), ("gasp", _summary("l", 0.62)),
                                    ("corr only", _summary("l", 0.54))]}
    paths = paper_figure(rows, tmp_path)
    assert [p.name for p in paths] == ["paper_figure.png", "paper_figure.pdf"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    assert paths[1].read_bytes()[:4] == b"%PDF"
    with pytest.raises(DataError, match="no probe runs"):
        paper_figure([], tmp_path)


def test_resolve_run_reads_the_label_from_the_manifest(tmp_path):
    from gaspprobe import io

    d = tmp_path / "run"
    d.mkdir()
    io.write_manifest(d, {"kind": "probe", "status": "complete", "model_label": "gasp"})
    io.atomic_write_json(d / "summary.json", _summary("/x/model", 0.5))
    label, s = _resolve_run(d)
    assert label == "gasp" and s["peak_accuracy"] == 0.5
    assert _resolve_run(("mine", {"a": 1})) == ("mine", {"a": 1})


def test_run_figures_name_tolerance_and_unit(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from gaspprobe.probing import plots

    seen = []
    orig = plt.Figure.savefig

    def spy(fig, *a, **k):
        seen.extend(t.get_text() for ax in fig.axes for t in [ax.yaxis.label, *ax.texts])
        return orig(fig, *a, **k)

    plt.Figure.savefig = spy
    try:
        write_figures(_summary("m", 0.5, unit="vision_patch"), tmp_path)
    finally:
        plt.Figure.savefig = orig
    assert "PCK@2 (patch = vision patch)" in seen and "patch = vision patch" in seen
    assert plots.PAPER_TICKS[:8] == [1, 2, 3, 4, 5, 6, 7, 8] and plots.PAPER_TICKS[-1] == 24
