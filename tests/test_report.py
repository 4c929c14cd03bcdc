"""Tests for `gaspprobe report`: run discovery/validation, the numbers in the tables, figures,
the self-contained HTML, atomic replacement, and the CLI.

The fixture runs below are written with `gaspprobe.io` in the agreed run-folder schemas (probe,
train, bench), with hand-chosen numbers so every expected value in the tests is computed by hand
here, independently of the report code.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gaspprobe import io
from gaspprobe.errors import DataError

# --------------------------------------------------------------------------- fixture runs
LAYERS = ["vision", "llm.0", "llm.1", "llm.2", "llm.3"]
BASE_ACC = {"vision": 0.30, "llm.0": 0.32, "llm.1": 0.20, "llm.2": 0.15, "llm.3": 0.10}
GASP_ACC = {"vision": 0.30, "llm.0": 0.40, "llm.1": 0.55, "llm.2": 0.72, "llm.3": 0.60}
BASE_GAP = {"1": 0.4, "2": 0.3, "4": 0.2, "8": 0.1}        # robustness = (.75+.5+.25)/3 = 0.5
GASP_GAP = {"1": 0.8, "2": 0.76, "4": 0.72, "8": 0.68}     # robustness = (.95+.9+.85)/3 = 0.9
CHANCE = 1 / 64
RECIPE = {"frames": 8, "gaps": [1, 2, 4, 8], "depth_tol": 0.05, "tolerances": [0, 1],
          "pairs_per_scene": 4, "seed": 0, "modes": ["hidden"], "out": "ignored/by/compare"}
SCENES = ["scene_000", "scene_001"]
# Per-question scores of the benchmark fixtures, with their aggregates computed by hand.
# synthetic_vsi (macro over question types): 4 object_counting (0/1) + 2 room_size (MRA).
QTYPES = ["object_counting"] * 4 + ["room_size_estimation"] * 2
VSI_SCORES = {"base": [1, 0, 0, 0, 0.3, 0.4],     # counting 25.0, room_size 35.0, overall 30.0
              "gasp": [1, 1, 1, 0, 0.4, 0.4]}     # counting 75.0, room_size 40.0, overall 57.5
TASKS = {"base": {"object_counting": 25.0, "room_size_estimation": 35.0},
         "gasp": {"object_counting": 75.0, "room_size_estimation": 40.0}}
# synthetic_allangles (micro): 11 camera_pose + 1 counting question, all multiple choice.
AA_TASKS = ["camera_pose"] * 11 + ["counting"]
AA_SCORES = {"base": [1, 1, 1] + [0] * 8 + [0],      # camera_pose 27.3 (3/11), counting 0, overall 25.0
             "gasp": [1, 1, 1, 1, 1] + [0] * 6 + [1]}  # camera_pose 45.5 (5/11), counting 100, overall 50.0
AA_SUMMARY = {"base": {"camera_pose": 100 * 3 / 11, "counting": 0.0},
              "gasp": {"camera_pose": 100 * 5 / 11, "counting": 100.0}}


def _manifest(kind, config, model, status="complete", **extra):
    return io.make_manifest(kind, config, seed=0, status=status, model=model, **extra)


def write_probe(run, model, acc, by_gap, *, label=None, recipe=None, scenes=SCENES,
                summary_extra=None, drop_summary_keys=(), depth_gain=0.0):
    """A probe run folder whose table is consistent with its summary (equal n per scene)."""
    rows = []
    peak_layer = max((k for k in acc if k != "vision"), key=acc.get)
    for sc in scenes:
        for layer in LAYERS:
            rows.append(dict(model=model, scene=sc, layer=layer, gap=1, metric="hidden/acc_r0",
                             value=acc[layer], n=10))
            rows.append(dict(model=model, scene=sc, layer=layer, gap=1, metric="depth/absrel",
                             value=0.5, n=10))
        rows.append(dict(model=model, scene=sc, layer="vision", gap=0, metric="chance",
                         value=CHANCE, n=64))
    table = pd.DataFrame(rows)
    g = {float(k): v for k, v in by_gap.items()}
    g0 = min(g)
    summary = {
        "model": model, "layers": LAYERS,
        "accuracy": {"r0": dict(acc), "r1": {k: min(1.0, v + 0.1) for k, v in acc.items()}},
        "peak_layer": peak_layer, "peak_accuracy": acc[peak_layer],
        "layer_mean_accuracy": sum(v for k, v in acc.items() if k != "vision") / 4,
        "chance": CHANCE, "accuracy_by_gap": dict(by_gap),
        "robustness": sum(v / g[g0] for k, v in g.items() if k > g0) / (len(g) - 1),
        "robustness_ratios": {k: v / g[g0] for k, v in by_gap.items()},
        "gaps": sorted(int(k) for k in by_gap),
        "confidence_spearman": {k: 0.1 for k in LAYERS},
        "depth_probe": {k: {"absrel": 0.5 - (0.05 + depth_gain) * i,
                            "delta1": 0.3 + (0.1 + depth_gain) * i}
                        for i, k in enumerate(LAYERS)},
        "n_pairs": 8, "n_matches": 640, "n_scenes": len(scenes),
    }
    summary.update(summary_extra or {})
    for k in drop_summary_keys:
        summary.pop(k, None)
    io.write_table(table, run / "probe.parquet")
    io.atomic_write_json(run / "summary.json", summary)
    extra = {"model_label": label} if label else {}
    io.write_manifest(run, _manifest("probe", recipe or RECIPE, model, **extra))
    return run


def write_bench(run, model, tasks, *, benchmark="synthetic_vsi", label=None, ids=None,
                frames=8, config=None, summary_extra=None, scores=None, task_of=None, overall=None):
    """A bench run in the runner's schema: per-question ``scores`` (0/1 or MRA) under ``task_of``
    (default: the VSI question types) and a summary whose ``tasks``/``overall`` the caller gives."""
    qtypes = task_of or QTYPES
    ids = list(range(len(scores if scores is not None else qtypes))) if ids is None else ids
    scores = scores if scores is not None else [1.0] * len(ids)
    table = pd.DataFrame(dict(model=model, benchmark=benchmark, id=[str(i) for i in ids],
                              question_type=qtypes[:len(ids)], prediction="1", parsed="1",
                              target="1", score=[float(x) for x in scores[:len(ids)]],
                              task=qtypes[:len(ids)], failed="",
                              cluster=[f"scene_{int(i) // 3}" for i in ids], pair_idx=None))
    if overall is None:
        overall = sum(tasks.values()) / len(tasks)
    io.write_table(table, run / "scores.parquet")
    io.atomic_write_json(run / "summary.json", {
        "model": model, "benchmark": benchmark, "overall": overall, "tasks": dict(tasks),
        "n": len(ids), "n_failed": 0, "parse_failures": 1, "frames": frames,
        "prompt_variant": "official", "card_version": 1, **(summary_extra or {})})
    extra = {"model_label": label} if label else {}
    io.write_manifest(run, _manifest("bench", config or {"benchmark": benchmark, "limit": None},
                                     model, **extra))
    return run


def write_train(run, base_model, output_model, steps=20):
    log = pd.DataFrame({"step": range(steps),
                        "loss": [2.0 / (1 + s) + 0.1 for s in range(steps)],
                        "loss_corr": [1.5 / (1 + s) for s in range(steps)],
                        "loss_depth": [0.5 / (1 + s) + 0.1 for s in range(steps)],
                        "lr": [1e-4] * steps, "acc_llm": [s / steps for s in range(steps)]})
    run.mkdir(parents=True, exist_ok=True)
    io.atomic_write_text(run / "train_log.csv", log.to_csv(index=False))
    io.write_manifest(run, _manifest("train", {"lr": 1e-4, "steps": steps}, base_model,
                                     output_model=str(output_model)))
    return run


# The bench runner's statistics blocks, as a run writes them (hand-chosen values).
VSI_EXTRA = {
    "base": {"scorer": "generate",
             "ci": {"level": 0.95, "n_boot": 1000, "seed": 0, "clusters": 2, "overall": [20.0, 40.0],
                    "tasks": {"object_counting": [0.0, 50.0], "room_size_estimation": [30.0, 40.0]}},
             "baselines": {"chance": None,
                           "frequency": {"overall": 12.5, "tasks": {"object_counting": 0.0,
                                                                    "room_size_estimation": 25.0}},
                           "blind": {"overall": 10.0, "tasks": {"object_counting": 0.0,
                                                                "room_size_estimation": 20.0}, "n": 6}}},
    "gasp": {"scorer": "generate",
             "ci": {"level": 0.95, "n_boot": 1000, "seed": 0, "clusters": 2, "overall": [45.0, 70.0],
                    "tasks": {"object_counting": [50.0, 100.0], "room_size_estimation": [40.0, 40.0]}},
             "baselines": {"chance": None,
                           "frequency": {"overall": 12.5, "tasks": {"object_counting": 0.0,
                                                                    "room_size_estimation": 25.0}},
                           "blind": None}},
}


def make_loop_runs(root: Path) -> dict:
    """A loop-like folder: base probe, train, GASP probe, two benchmarks on both models."""
    root = Path(root)
    base = "tiny:qwen2_5_vl"
    gasp = str(root / "train" / "model")
    (root / "train" / "model").mkdir(parents=True)
    runs = {
        "probe_base": write_probe(root / "probe_base", base, BASE_ACC, BASE_GAP, label="base"),
        "train": write_train(root / "train", base, gasp),
        "probe_gasp": write_probe(root / "probe_gasp", gasp, GASP_ACC, GASP_GAP, label="gasp",
                                  depth_gain=0.04),
        "bench_base": write_bench(root / "bench_base", base, TASKS["base"], label="base",
                                  scores=VSI_SCORES["base"], summary_extra=VSI_EXTRA["base"]),
        "bench_gasp": write_bench(root / "bench_gasp", gasp, TASKS["gasp"], label="gasp",
                                  scores=VSI_SCORES["gasp"], summary_extra=VSI_EXTRA["gasp"]),
        "aa_base": write_bench(root / "aa_base", base, AA_SUMMARY["base"], label="base",
                               benchmark="synthetic_allangles", scores=AA_SCORES["base"],
                               task_of=AA_TASKS, overall=25.0, summary_extra={
                                   "n_per_task": {"camera_pose": 11, "counting": 1},
                                   "paired_consistency": {"camera_pose": {
                                       "pairs": 2, "CC": 50.0, "WW": 0.0, "IC": 50.0}}}),
        "aa_gasp": write_bench(root / "aa_gasp", gasp, AA_SUMMARY["gasp"], label="gasp",
                               benchmark="synthetic_allangles", scores=AA_SCORES["gasp"],
                               task_of=AA_TASKS, overall=50.0, summary_extra={
                                   "n_per_task": {"camera_pose": 11, "counting": 1},
                                   "paired_consistency": {"camera_pose": {
                                       "pairs": 2, "CC": 100.0, "WW": 0.0, "IC": 0.0}}}),
    }
    return runs


@pytest.fixture(scope="module")
def loop_runs(tmp_path_factory):
    return make_loop_runs(tmp_path_factory.mktemp("loop"))


@pytest.fixture(scope="module")
def built(loop_runs, tmp_path_factory):
    """One report over all the fixture runs (built once: figures take a few seconds)."""
    from gaspprobe.reporting.report import report

    out = tmp_path_factory.mktemp("rep") / "report"
    html = report(list(loop_runs.values()), out)
    return out, html


def _leftovers(folder: Path) -> list[str]:
    """Hidden entries of ``folder`` other than the run kernel's ``.<name>.lock`` files."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]


def _md_table(md: str, title: str) -> pd.DataFrame:
    """Parse the Markdown table under '### title' into a DataFrame of strings."""
    lines = md.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("### ") and title in ln)
    rows = []
    for ln in lines[i + 2:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip().strip("|").split(" | ")])
    return pd.DataFrame(rows[2:], columns=rows[0])


# --------------------------------------------------------------------------- runs
def test_models_are_paired_named_and_coloured(loop_runs):
    from gaspprobe.reporting.runs import load_runs

    rs = load_runs(list(loop_runs.values()))
    names = [m.name for m in rs.models.values()]
    assert names == ["base", "gasp"]
    base, gasp = rs.models.values()
    assert (base.role, gasp.role) == ("base", "gasp")
    assert gasp.base_key == base.key
    assert rs.pairs == [(base.key, gasp.key)]
    assert base.color != gasp.color and re.fullmatch(r"#[0-9a-f]{6}", base.color)


def test_discovery_finds_runs_inside_a_loop_folder(loop_runs):
    from gaspprobe.reporting.runs import discover

    root = loop_runs["train"].parent
    found = discover(root)
    assert sorted(p.name for p in found) == sorted(p.name for p in loop_runs.values())


def test_gasp_model_found_through_relative_path(tmp_path, monkeypatch):
    """A probe run naming the GASP model by a relative path still pairs with the train run."""
    from gaspprobe.reporting.runs import load_runs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t" / "model").mkdir(parents=True)
    write_train(tmp_path / "t", "org/base-7b", (tmp_path / "t" / "model").resolve())
    write_probe(tmp_path / "pb", "org/base-7b", BASE_ACC, BASE_GAP)
    write_probe(tmp_path / "pg", "t/model", GASP_ACC, GASP_GAP)
    rs = load_runs([tmp_path / "pb", tmp_path / "pg", tmp_path / "t"])
    assert [m.name for m in rs.models.values()] == ["org/base-7b", "GASP(org/base-7b)"]
    assert len(rs.pairs) == 1


def test_labels_pair_models_without_a_train_run(loop_runs):
    from gaspprobe.reporting.runs import load_runs

    rs = load_runs([loop_runs["probe_base"], loop_runs["probe_gasp"]])
    assert [(m.name, m.role) for m in rs.models.values()] == [("base", "base"), ("gasp", "gasp")]


@pytest.mark.parametrize("case", ["no_manifest", "other_kind", "running", "no_table", "no_summary",
                                  "garbage_table", "bad_accuracy", "missing", "empty_list"])
def test_bad_run_folders_get_one_line_error_naming_the_folder(tmp_path, case):
    from gaspprobe.reporting.runs import load_runs

    run = tmp_path / "run"
    write_probe(run, "m", BASE_ACC, BASE_GAP)
    if case == "no_manifest":
        (run / "manifest.json").unlink()
        (run / "junk.txt").write_text("x")
    elif case == "other_kind":
        io.write_manifest(run, {"kind": "scenes", "status": "complete"})
    elif case == "running":
        io.write_manifest(run, _manifest("probe", RECIPE, "m", status="running"))
    elif case == "no_table":
        (run / "probe.parquet").unlink()
    elif case == "no_summary":
        (run / "summary.json").unlink()
    elif case == "garbage_table":
        (run / "probe.parquet").write_bytes(b"not parquet")
    elif case == "bad_accuracy":
        write_probe(run, "m", {k: 100 * v for k, v in BASE_ACC.items()}, BASE_GAP)
    elif case == "missing":
        shutil.rmtree(run)
    with pytest.raises(DataError) as e:
        load_runs([] if case == "empty_list" else [run])
    msg = str(e.value)
    assert "\n" not in msg
    if case != "empty_list":
        assert msg.startswith(str(run)), msg
    expected = {"no_manifest": "not a gaspprobe run", "other_kind": "'scenes'",
                "running": "not finished", "no_table": "probe.parquet",
                "no_summary": "summary.json", "garbage_table": "not a readable parquet",
                "bad_accuracy": "not a fraction", "missing": "no such folder",
                "empty_list": "no run folders"}[case]
    assert expected in msg


def test_train_run_without_log_is_half_written(tmp_path):
    from gaspprobe.reporting.runs import load_runs

    run = write_train(tmp_path / "t", "m", tmp_path / "t" / "model")
    (run / "train_log.csv").unlink()
    with pytest.raises(DataError, match="train_log.csv"):
        load_runs([run])


def test_incompatible_probe_recipes_are_refused(tmp_path):
    from gaspprobe.reporting.runs import load_runs

    a = write_probe(tmp_path / "a", "m1", BASE_ACC, BASE_GAP)
    b = write_probe(tmp_path / "b", "m2", GASP_ACC, GASP_GAP,
                    recipe={**RECIPE, "depth_tol": 0.1, "out": "elsewhere"})
    with pytest.raises(DataError) as e:
        load_runs([a, b])
    assert str(e.value).startswith(str(b)) and "depth_tol" in str(e.value)
    assert "out" not in str(e.value).split("in ", 1)[1].split(":")[0]  # 'out' is not a recipe key
    # Allowed on request, with a warning that names the folder.
    rs = load_runs([a, b], allow_mismatch=True)
    assert len(rs.warnings) == 1 and str(b) in rs.warnings[0]


def test_probes_on_different_scenes_are_refused(tmp_path):
    from gaspprobe.reporting.runs import load_runs

    a = write_probe(tmp_path / "a", "m1", BASE_ACC, BASE_GAP)
    b = write_probe(tmp_path / "b", "m2", GASP_ACC, GASP_GAP, scenes=["scene_000", "scene_009"])
    with pytest.raises(DataError, match="other scenes"):
        load_runs([a, b])


def test_incompatible_bench_runs_are_refused(tmp_path):
    from gaspprobe.reporting.runs import load_runs

    a = write_bench(tmp_path / "a", "m1", TASKS["base"])
    b = write_bench(tmp_path / "b", "m2", TASKS["gasp"], frames=16)
    with pytest.raises(DataError, match="frames") as e:
        load_runs([a, b])
    assert str(e.value).startswith(str(b))
    c = write_bench(tmp_path / "c", "m3", TASKS["gasp"], ids=[0, 1, 2, 3, 4, 99])
    with pytest.raises(DataError, match="other questions"):
        load_runs([a, c])
    # Different benchmarks are never compared with each other.
    d = write_bench(tmp_path / "d", "m2", TASKS["gasp"], benchmark="synthetic_allangles", frames=16)
    assert len(load_runs([a, d]).runs) == 2


def test_duplicate_runs_of_one_model_are_refused(tmp_path):
    from gaspprobe.reporting.runs import load_runs

    a = write_probe(tmp_path / "a", "m1", BASE_ACC, BASE_GAP)
    b = write_probe(tmp_path / "b", "m1", BASE_ACC, BASE_GAP)
    with pytest.raises(DataError, match="second probe run"):
        load_runs([a, b])


# --------------------------------------------------------------------------- numbers
def test_headline_numbers_match_hand_computed_values(built):
    out, _ = built
    md = (out / "report.md").read_text()
    head = _md_table(md, "Headline (measured)").set_index("Model")
    assert head.loc["base", "Peak corr. r=0 (%)"] == "32.0"
    assert head.loc["base", "Peak layer"] == "llm.0"
    assert head.loc["gasp", "Peak corr. r=0 (%)"] == "72.0"
    assert head.loc["gasp", "Peak layer"] == "llm.2"
    assert head.loc["base", "Layer mean (%)"] == "19.2"     # (32+20+15+10)/4 = 19.25 -> 19.2
    assert head.loc["gasp", "Layer mean (%)"] == "56.8"     # (40+55+72+60)/4 = 56.75 -> 56.8
    assert head.loc["base", "Vision (%)"] == "30.0"
    assert head.loc["base", "Chance (%)"] == "1.6"          # 1/64
    assert head.loc["base", "Robustness (%)"] == "50.0"
    assert head.loc["gasp", "Robustness (%)"] == "90.0"
    assert head.loc["base", "Conf. ρ"] == "+0.10"
    assert "base: 2 scenes, 8 frame pairs, 640 matches" in md
    assert head.loc["base", "synthetic_vsi overall"] == "30.0"          # (25 + 35) / 2
    assert head.loc["gasp", "synthetic_allangles overall"] == "50.0"    # 6 of 12 right
    delta = _md_table(md, "Base -> GASP deltas").iloc[0]
    assert delta["Base -> GASP"] == "base -> gasp"
    assert delta["Δ peak corr."] == "+40.0"
    assert delta["Δ robustness"] == "+40.0"
    assert delta["Δ synthetic_vsi overall"] == "+27.5*"   # paired interval > 0 (see below)
    assert delta["Δ synthetic_allangles overall"] == "+25.0"


def _first(cell: str) -> str:
    """The number of a cell such as ``25.0 [0.0, 50.0]`` or ``+50.0* [12.5, 87.5]``."""
    return cell.split(" ")[0].rstrip("*")


def _bracket(cell: str) -> tuple[float, float] | None:
    m = re.search(r"\[(-?[\d.]+), (-?[\d.]+)\]", cell)
    return (float(m.group(1)), float(m.group(2))) if m else None


def test_per_question_type_tables(built):
    out, _ = built
    md = (out / "report.md").read_text()
    t = _md_table(md, "synthetic_vsi: score per question type").set_index("Question type")
    assert t.loc["object_counting", "n"] == "4" and t.loc["room_size_estimation", "n"] == "2"
    assert t.loc["object_counting", "base"] == "25.0 [0.0, 50.0]"      # the run's own interval
    assert t.loc["object_counting", "gasp"] == "75.0 [50.0, 100.0]"
    assert t.loc["overall", "base"] == "30.0 [20.0, 40.0]"
    # baselines beside the models: frequency (of the questions), blind (of the base model only)
    assert t.loc["room_size_estimation", "baseline: frequency"] == "25.0"
    assert t.loc["overall", "baseline: blind (base)"] == "10.0"
    assert "baseline: chance" not in t.columns                      # no chance for numbers
    # paired deltas from the per-question scores: 3 of 4 vs 1 of 4 right -> +50
    assert _first(t.loc["object_counting", "Δ gasp"]) == "+50.0"
    # the two room-size questions share one scene (bootstrap cluster): every draw holds both,
    # so the paired interval is [5, 5] and excludes zero
    assert t.loc["room_size_estimation", "Δ gasp"] == "+5.0* [5.0, 5.0]"  # MRA scores: no McNemar
    assert _first(t.loc["overall", "Δ gasp"]) == "+27.5"
    lo, hi = _bracket(t.loc["object_counting", "Δ gasp"])
    # clusters scene_0 (ids 0-2, both discordant questions) and scene_1 (id 3): a draw of
    # scene_1 twice (p = 1/4) has delta 0, one of scene_0 twice has 100 * (3 - 1) / 3
    assert (lo, hi) == (0.0, pytest.approx(66.7, abs=0.05))
    assert "*" not in t.loc["object_counting", "Δ gasp"]
    aa = _md_table(md, "synthetic_allangles: score per question type").set_index("Question type")
    assert _first(aa.loc["camera_pose", "Δ gasp"]) == "+18.2"        # 5/11 - 3/11
    assert aa.loc["camera_pose", "n"] == "11"         # the runner's n_per_task wins
    assert aa.loc["camera_pose", "base"] == "27.3"    # no interval in the summary: none shown
    pc = _md_table(md, "synthetic_allangles: paired consistency").set_index("Category")
    assert pc.loc["camera_pose", "pairs"] == "2"
    assert (pc.loc["camera_pose", "base IC"], pc.loc["camera_pose", "gasp CC"]) == ("50.0", "100.0")


def test_significant_delta_is_marked(tmp_path):
    """20 multiple-choice questions, base always wrong and GASP always right: every bootstrap draw
    gives +100, so the delta is marked; McNemar's exact p = 2 / 2^20."""
    from gaspprobe.reporting.report import report

    tasks = ["camera_pose"] * 20
    a = write_bench(tmp_path / "a", "org/base", {"camera_pose": 0.0}, benchmark="synthetic_allangles",
                    scores=[0] * 20, task_of=tasks, label="base", overall=0.0)
    b = write_bench(tmp_path / "b", "org/gasp", {"camera_pose": 100.0},
                    benchmark="synthetic_allangles", scores=[1] * 20, task_of=tasks, label="gasp",
                    overall=100.0)
    out = tmp_path / "out"
    md = report([a, b], out, formats=("png",)).with_name("report.md").read_text()
    t = _md_table(md, "synthetic_allangles: score per question type").set_index("Question type")
    assert t.loc["camera_pose", "Δ gasp"] == "+100.0* [100.0, 100.0] p=1.91e-06"   # 2 / 2^20
    assert t.loc["overall", "Δ gasp"] == "+100.0* [100.0, 100.0] p=1.91e-06"
    paired = json.loads((out / "report.json").read_text())["measured"]["paired"]
    p = {r["task"]: r for r in paired}
    assert p["camera_pose"]["p"] == pytest.approx(2 / 2 ** 20) and p["camera_pose"]["significant"]


def test_paper_numbers_only_in_the_paper_section(built):
    """The paper's +18.2 / +29.0 / >70% / >85% / <5% appear, labelled, and never in measured
    tables (the fixture's measured camera-pose delta is also +18.2: it must stay in its own table)."""
    out, html_path = built
    md = (out / "report.md").read_text()
    sections = re.split(r"^## ", md, flags=re.M)
    paper = [s for s in sections if s.startswith("Reported in the paper")]
    assert len(paper) == 1 and "not measured here" in paper[0]
    for claim in ("> 70%", "< 5%", "> 85%", "+18.2", "+29.0"):
        assert claim in paper[0]
    measured = [s for s in sections if s.startswith(("Headline", "Benchmarks"))]
    assert measured and all("+29.0" not in s and "paper" not in s.lower() for s in measured)
    data = json.loads(re.search(r'id="gaspprobe-data">(.*?)</script>', html_path.read_text(),
                                re.S).group(1))
    assert [r["value"] for r in data["paper_reference"]] == ["> 70%", "< 5%", "> 85%", "+18.2",
                                                              "+29.0"]
    assert "paper_reference" not in data["measured"]


def test_summary_without_accuracy_is_refused_not_rebuilt(tmp_path):
    """The report reads the probe's numbers, never re-derives them from probe.parquet: a summary
    without its accuracy block is a one-line error naming the folder."""
    from gaspprobe.reporting.runs import load_runs

    run = write_probe(tmp_path / "p", "m", BASE_ACC, BASE_GAP, drop_summary_keys=("accuracy",))
    with pytest.raises(DataError) as e:
        load_runs([run])
    assert str(e.value).startswith(str(run)) and "'accuracy'" in str(e.value)
    assert "\n" not in str(e.value)


def test_numbers_come_from_the_summary_not_the_table(tmp_path):
    """A table whose rows disagree with the summary: every reported number is the summary's
    (peak, peak layer, layer mean, chance, robustness, per-gap accuracy)."""
    from gaspprobe.reporting.collect import collect
    from gaspprobe.reporting.runs import load_runs

    run = write_probe(tmp_path / "p", "m", BASE_ACC, BASE_GAP)
    t = io.read_table(run / "probe.parquet")
    t.loc[t.metric == "hidden/acc_r0", "value"] = 0.99
    io.write_table(t, run / "probe.parquet")
    data = collect(load_runs([run]))
    p = data.probe.iloc[0]
    assert (p.peak, p.peak_layer) == (pytest.approx(0.32), "llm.0")
    assert p.layer_mean == pytest.approx((0.32 + 0.20 + 0.15 + 0.10) / 4)
    assert p.chance == pytest.approx(1 / 64) and p.robustness == pytest.approx(0.5)
    assert data.corr.set_index("layer").query("r == 'r0'")["accuracy"].to_dict() == \
        pytest.approx(BASE_ACC)
    assert dict(zip(data.gaps["gap"], data.gaps["accuracy"])) == \
        pytest.approx({float(k): v for k, v in BASE_GAP.items()})


# --------------------------------------------------------------------------- files
def test_report_files_and_figures(built):
    out, html_path = built
    assert html_path == out / "report.html"
    figs = {p.name for p in (out / "figures").iterdir()}
    for stem in ("paper_figure", "accuracy_vs_layer_hidden", "accuracy_vs_gap", "robustness", "depth_probe",
                 "benchmark_synthetic_vsi", "benchmark_synthetic_allangles", "training_loss"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= figs
    from PIL import Image

    for p in (out / "figures").glob("*.png"):
        im = Image.open(p)
        assert im.size[0] >= 600  # 3.4 in x 200 dpi
        colors = im.convert("RGB").getcolors(maxcolors=1 << 24)
        assert len(colors) > 50, p  # not blank
    assert (out / "figures" / "robustness.pdf").read_bytes().startswith(b"%PDF")
    md = (out / "report.md").read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / link).is_file()
    assert io.read_manifest(out, kind="report")["status"] == "complete"
    assert _leftovers(out.parent) == []  # no temp or old folder left (the kernel's lock file stays)


def test_html_is_self_contained(built):
    _, html_path = built
    h = html_path.read_text()
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', h)
    assert len(srcs) == 8 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:|//|file:)', h)
    assert "<link" not in h and "@import" not in h
    assert "default-src 'none'" in h
    data = json.loads(re.search(r'id="gaspprobe-data">(.*?)</script>', h, re.S).group(1))
    assert {m["name"] for m in data["models"]} == {"base", "gasp"}
    peaks = {r["model"]: r["peak"] for r in data["measured"]["probe"]}
    assert peaks == {"base": pytest.approx(0.32), "gasp": pytest.approx(0.72)}


def test_names_are_escaped_in_html(tmp_path):
    from gaspprobe.reporting.report import report

    run = write_probe(tmp_path / "p", "m", BASE_ACC, BASE_GAP, label="<b>evil</b>")
    h = report([run], tmp_path / "out").read_text()
    assert "<b>evil</b>" not in h and "&lt;b&gt;evil&lt;/b&gt;" in h


def test_never_replaces_a_good_report_with_a_broken_one(built, loop_runs, tmp_path):
    from gaspprobe.reporting.report import report

    out = tmp_path / "rep"
    shutil.copytree(built[0], out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    broken = write_probe(tmp_path / "half", "x", BASE_ACC, BASE_GAP)
    io.write_manifest(broken, _manifest("probe", RECIPE, "x", status="running"))
    with pytest.raises(DataError, match="not finished"):
        report([loop_runs["probe_base"], broken], out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    # A failure in the middle of building (here: a bug) also leaves the old report untouched.
    import gaspprobe.reporting.publish as pub

    orig = pub.render_markdown
    pub.render_markdown = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom"))
    try:
        with pytest.raises(RuntimeError):
            report([loop_runs["probe_base"]], out)
    finally:
        pub.render_markdown = orig
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert _leftovers(tmp_path) == []
    # A good rebuild replaces it.
    report([loop_runs["probe_base"]], out)
    assert "gasp" not in _md_table((out / "report.md").read_text(), "Headline")["Model"].tolist()


def test_refuses_to_replace_an_unrelated_folder(loop_runs, tmp_path):
    from gaspprobe.reporting.report import report

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not a gaspprobe report"):
        report([loop_runs["probe_base"]], tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_partial_report_inputs(tmp_path):
    """Only bench runs, no pairs: a report without probe columns or delta tables."""
    from gaspprobe.reporting.report import report

    a = write_bench(tmp_path / "a", "org/m1", TASKS["base"])
    md = report([a], tmp_path / "out").with_name("report.md").read_text()
    head = _md_table(md, "Headline")
    assert list(head.columns) == ["Model", "Role", "synthetic_vsi overall"]
    assert "Base -> GASP" not in md


# --------------------------------------------------------------------------- CLI
def test_cli_report(loop_runs, tmp_path):
    from gaspprobe.cli import main

    out = tmp_path / "cli_rep"
    with pytest.raises(SystemExit) as e:
        main(["report", str(loop_runs["train"].parent), "--out", str(out), "--no-pdf"])
    assert e.value.code == 0
    assert (out / "report.html").is_file()
    assert not list((out / "figures").glob("*.pdf"))


def test_cli_bad_run_is_one_line_exit_2(tmp_path, capsys):
    from gaspprobe.cli import main

    (tmp_path / "nope").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path / "nope") in err and "not a gaspprobe run" in err


# --------------------------------------------------------------------------- schema variants
def test_attention_mode_missing_values_and_long_training(tmp_path):
    """An attention block adds a q·k column and figure; null values show as a dash; a long
    training log is drawn (smoothed) without error."""
    from gaspprobe.reporting.report import report

    att = {"accuracy": {"r0": {"vision": 0.1, "llm.0": 0.2, "llm.1": None, "llm.2": 0.6,
                               "llm.3": 0.4}}, "peak_layer": "llm.2", "peak_accuracy": 0.6}
    a = write_probe(tmp_path / "a", "m1", BASE_ACC, BASE_GAP, summary_extra={
        "attention": att, "robustness": None})
    (tmp_path / "t" / "model").mkdir(parents=True)
    t = write_train(tmp_path / "t", "m1", tmp_path / "t" / "model", steps=400)
    out = tmp_path / "out"
    md = report([a, t], out).with_name("report.md").read_text()
    head = _md_table(md, "Headline").set_index("Model")
    assert head.loc["m1", "Peak q·k (%)"] == "60.0"
    assert head.loc["m1", "Robustness (%)"] == "–"
    assert (out / "figures" / "accuracy_vs_layer_attention.png").is_file()
    assert (out / "figures" / "training_loss.png").is_file()
    assert not (out / "figures" / "robustness.png").exists()   # nothing to draw


def test_report_on_real_probe_runs(tmp_path):
    """Integration: runs written by the real probe runner (oracle models on generated scenes)."""
    import torch

    from gaspprobe.probing.run import probe
    from gaspprobe.reporting.collect import collect
    from gaspprobe.reporting.report import report
    from gaspprobe.reporting.runs import load_runs
    from gaspprobe.scenes import generate_scene

    torch.set_num_threads(1)
    scenes = [generate_scene(i, frames=6, size=64) for i in range(2)]
    kw = dict(gaps=[1, 2, 4], modes=["hidden"], frames_per_clip=6, progress=False)
    runs = [probe(m, scenes, None, out=tmp_path / m.replace(":", "_"), **kw).out
            for m in ("oracle:xyz", "oracle:random")]
    rs = load_runs(runs)
    data = collect(rs)
    for run in rs.runs:
        s = json.loads((run.path / "summary.json").read_text())
        p = data.probe.set_index("model").loc[rs.name(run.model_key)]
        assert p.peak == pytest.approx(s["peak_accuracy"]) and p.peak_layer == s["peak_layer"]
        # Every layer's accuracy is the runner's own.
        corr = data.corr[(data.corr.model == rs.name(run.model_key)) & (data.corr.r == "r0")]
        by_layer = dict(zip(corr["layer"], corr["accuracy"]))
        for layer, v in s["accuracy"]["r0"].items():
            if v is not None:
                assert by_layer[layer] == pytest.approx(v), layer
    html = report(runs, tmp_path / "rep")
    head = _md_table(html.with_name("report.md").read_text(), "Headline").set_index("Model")
    assert float(head.loc["oracle:xyz", "Peak corr. r=0 (%)"]) > 80
    # A probe of the same model with another recipe is refused, naming the folder.
    other = probe("oracle:random", scenes, None, out=tmp_path / "other",
                  **{**kw, "gaps": [1, 2]}).out
    with pytest.raises(DataError, match="gaps") as e:
        load_runs([runs[0], other])
    assert str(e.value).startswith(str(other))


@pytest.mark.parametrize("peak,off", [(0.2, True), (0.9, False)])
def test_paper_line_off_scale_is_said_in_the_legend(peak, off):
    """Low measured accuracies keep a readable axis; the paper's 70% line then says 'off scale'."""
    from gaspprobe.reporting.plots import accuracy_vs_layer_figure

    corr = pd.DataFrame({"model": ["a"] * 3, "layer_index": [None, 0, 1],
                         "accuracy": [0.1, peak, peak / 2]})
    fig = accuracy_vs_layer_figure(corr, {"a": "#0173b2"}, chance={"a": 1 / 64})
    labels = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert ("paper: GASP peak > 70% (off scale, above)" in labels) is off
    assert any(t.startswith("paper: GASP peak > 70%") for t in labels)
    top = fig.axes[0].get_ylim()[1]
    assert top == pytest.approx(100 if not off else 1.15 * 100 * peak)


def test_two_gasp_models_of_one_base(tmp_path):
    """An ablation: two train runs from one base; each GASP model pairs with that base."""
    from gaspprobe.reporting.report import report

    for t in ("t1", "t2"):
        (tmp_path / t / "model").mkdir(parents=True)
        write_train(tmp_path / t, "org/base", tmp_path / t / "model")
    write_probe(tmp_path / "pb", "org/base", BASE_ACC, BASE_GAP)
    write_probe(tmp_path / "p1", str(tmp_path / "t1" / "model"), GASP_ACC, GASP_GAP)
    write_probe(tmp_path / "p2", str(tmp_path / "t2" / "model"),
                {**GASP_ACC, "llm.2": 0.5}, GASP_GAP)
    md = report(tmp_path, tmp_path / "out").with_name("report.md").read_text()
    head = _md_table(md, "Headline").set_index("Model")
    assert list(head.index) == ["org/base", "GASP(org/base)", "GASP(org/base) #2"]
    d = _md_table(md, "Base -> GASP deltas").set_index("Base -> GASP")["Δ peak corr."]
    assert d.to_dict() == {"org/base -> GASP(org/base)": "+40.0",
                           "org/base -> GASP(org/base) #2": "+28.0"}   # 60 - 32


# --------------------------------------------------------------------------- scale, templates
def test_scale_note_for_tiny_models_and_likelihood_scorer(built, tmp_path):
    """What the tiny scale can and cannot show is said when a benchmarked model is tiny (the
    fixture loop's base is 'tiny:...', its GASP model inherits that) or a run used the
    non-official likelihood scorer; a real model scored the official way gets no such note."""
    from gaspprobe.reporting.report import report

    md = (built[0] / "report.md").read_text()
    bench = md.split("## Benchmarks per question type", 1)[1]
    assert "What this scale can and cannot show" in bench and "likelihood scorer" in bench
    a = write_bench(tmp_path / "a", "org/m1", TASKS["base"], scores=VSI_SCORES["base"])
    md = report([a], tmp_path / "o1", formats=("png",)).with_name("report.md").read_text()
    assert "What this scale can and cannot show" not in md
    b = write_bench(tmp_path / "b", "org/m1", TASKS["base"], scores=VSI_SCORES["base"],
                    summary_extra={"scorer": "likelihood"})
    md = report([b], tmp_path / "o2", formats=("png",)).with_name("report.md").read_text()
    assert "What this scale can and cannot show" in md
    assert "### synthetic_vsi: score per question type (x100, measured; scorer: likelihood " \
           "(NON-official))" in md


def test_templates_come_from_the_package_or_the_checkout(monkeypatch):
    """The jinja2 templates are found as package data (gaspprobe.report_templates) when installed
    that way, else in the checkout's reports/templates/; the renderers use exactly those files."""
    from importlib import resources

    from gaspprobe.reporting import publish

    root = publish.templates_dir()
    for f in publish.TEMPLATE_FILES:
        assert root.joinpath(f).is_file()
    checkout = Path(__file__).resolve().parents[1] / "reports" / "templates"
    try:
        pkg = resources.files(publish.TEMPLATES_PACKAGE)
    except ModuleNotFoundError:
        pkg = None
    if pkg is not None and pkg.joinpath("report.html.j2").is_file():
        assert root == pkg
    else:
        assert Path(str(root)) == checkout
    # Neither place: one line naming where it looked.
    monkeypatch.setattr(publish, "TEMPLATE_FILES", ("no_such_template.j2",))
    with pytest.raises(DataError, match="no_such_template.j2.*reinstall"):
        publish.templates_dir()


def test_headline_reads_new_probe_keys(tmp_path):
    """A paper-recipe summary (headline r = 2, gap-balanced mean, ratio at the largest gap, a reason
    for an undefined robustness) is shown as written, under PCK@2patch column names."""
    from gaspprobe.reporting.report import report

    a = write_probe(tmp_path / "a", "m1", BASE_ACC, BASE_GAP, summary_extra={
        "headline_r": 2, "peak_accuracy": 0.61, "headline_chance": 25 / 64,
        "gap_balanced_accuracy": 0.25, "robustness_at_max_gap": 0.25, "robustness": None,
        "robustness_reason": "accuracy at gap 1 (0.400) is within noise of chance"})
    md = report([a], tmp_path / "out", formats=("png",)).with_name("report.md").read_text()
    head = _md_table(md, "Headline").set_index("Model")
    assert head.loc["m1", "Peak PCK@2patch (%)"] == "61.0"
    assert head.loc["m1", "Chance (%)"] == "39.1"                # 25/64 at r = 2
    assert head.loc["m1", "Gap-balanced (%)"] == "25.0"
    assert head.loc["m1", "Norm. PCK at max Δt (%)"] == "25.0"
    assert head.loc["m1", "Robustness (%)"] == "–"
    assert "m1: robustness undefined, accuracy at gap 1 (0.400) is within noise of chance" in md
    assert not re.search(r"\bnan\b", md.lower())


def test_paper_layout_figure_on_top(built, loop_runs, tmp_path):
    """The paper's three-panel figure comes first (its own section before the headline), as PNG and
    PDF, with one row per base model (and its GASP models) plus one row for the other models."""
    from PIL import Image

    from gaspprobe.reporting.report import report

    out, _ = built
    md = (out / "report.md").read_text()
    assert md.index("## Diagnostic") < md.index("## Headline")
    assert "![Diagnostic in the paper's layout](figures/paper_figure.png)" in md
    assert (out / "figures" / "paper_figure.pdf").read_bytes().startswith(b"%PDF")
    w, h = Image.open(out / "figures" / "paper_figure.png").size
    assert 3.2 < w / h < 4.0                      # one row of three panels (16 x 4.4 in)
    # a third, unpaired model gets a second row; --no-pdf leaves no PDF of it
    other = write_probe(tmp_path / "other", "org/other", BASE_ACC, BASE_GAP)
    rep = tmp_path / "rep"
    report([loop_runs["probe_base"], loop_runs["train"], loop_runs["probe_gasp"], other], rep,
           formats=("png",))
    w, h = Image.open(rep / "figures" / "paper_figure.png").size
    assert 1.6 < w / h < 2.0                      # two rows (16 x 8.8 in)
    assert not (rep / "figures" / "paper_figure.pdf").exists()
    # no probe run: no diagnostic section
    a = write_bench(tmp_path / "a", "org/m1", TASKS["base"], scores=VSI_SCORES["base"])
    md = report([a], tmp_path / "o", formats=("png",)).with_name("report.md").read_text()
    assert "Diagnostic" not in md and not (tmp_path / "o" / "figures" / "paper_figure.png").exists()


def test_probe_without_matches_is_left_out_of_the_paper_figure(loop_runs, tmp_path):
    """n = 0 everywhere (no accuracy at any layer): the headline shows dashes, the paper figure
    leaves that run out and says so; with no other probe run there is no paper figure at all."""
    from gaspprobe.reporting.report import report

    nothing = {k: None for k in LAYERS}
    e = write_probe(tmp_path / "e", "org/empty", {k: 0.0 for k in LAYERS}, BASE_GAP, summary_extra={
        "accuracy": {"r0": nothing}, "peak_layer": None, "peak_accuracy": None, "robustness": None,
        "layer_mean_accuracy": None, "accuracy_by_gap": {}, "robustness_ratios": {}})
    md = report([loop_runs["probe_base"], e], tmp_path / "o1", formats=("png",)) \
        .with_name("report.md").read_text()
    assert "Left out (no matches to score): org/empty." in md
    assert _md_table(md, "Headline").set_index("Model").loc["org/empty", "Peak corr. r=0 (%)"] == "–"
    md = report([e], tmp_path / "o2", formats=("png",)).with_name("report.md").read_text()
    assert "Diagnostic" not in md and not re.search(r"\bnan\b", md.lower())


def test_benchmark_figure_draws_intervals_and_baselines():
    """Error bars span each run's interval; chance / most-frequent ticks sit at their values."""
    from matplotlib.collections import LineCollection

    from gaspprobe.reporting.plots import benchmark_figure

    bench = pd.DataFrame({"model": ["a", "a"], "task": ["t1", "t2"], "score": [40.0, 60.0],
                          "ci_low": [30.0, np.nan], "ci_high": [55.0, np.nan]})
    base = pd.DataFrame({"baseline": ["chance", "frequency", "blind"], "model": [None, None, "a"],
                         "task": ["t1", "t2", "t1"], "score": [25.0, 50.0, 10.0]})
    fig = benchmark_figure(bench, {"a": "#0173b2"}, [], benchmark="b", baselines=base)
    ax = fig.axes[0]
    labels = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert "chance" in labels and "most frequent answer" in labels
    segs = [s for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()]
    horiz = sorted((round(s[0][0], 6), round(s[1][0], 6)) for s in segs if s[0][1] == s[1][1])
    vert = sorted(round(s[0][0], 6) for s in segs if s[0][0] == s[1][0])
    assert (30.0, 55.0) in horiz                     # t1's interval; t2 has none
    assert 25.0 in vert and 50.0 in vert and 10.0 not in vert   # blind is in the table, not here


def test_a_second_report_into_the_same_folder_is_refused_while_one_runs(loop_runs, tmp_path):
    """The report folder is a run of the run kernel: while another process holds it, a second
    report is refused with one line naming the folder and the holder, and writes nothing."""
    from gaspprobe.reporting.report import report
    from gaspprobe.runs import RunLock

    out = tmp_path / "rep"
    with RunLock(out):
        with pytest.raises(DataError) as e:
            report([loop_runs["probe_base"]], out, formats=("png",))
    msg = str(e.value)
    assert msg.startswith(str(out)) and "in use by pid" in msg and "\n" not in msg
    assert not out.exists() and _leftovers(tmp_path) == []
    report([loop_runs["probe_base"]], out, formats=("png",))    # free again: builds
    assert (out / "report.html").is_file()


def test_old_bench_tables_without_task_get_plain_deltas_and_a_warning(tmp_path):
    """Bench runs written before scores.parquet had a ``task`` column (schema version 0) are still
    reported; their deltas are plain differences, and a warning says why no interval is shown."""
    from gaspprobe.reporting.report import report

    runs = []
    for name, tasks, scores in (("base", TASKS["base"], VSI_SCORES["base"]),
                                ("gasp", TASKS["gasp"], VSI_SCORES["gasp"])):
        r = write_bench(tmp_path / name, f"org/{name}", tasks, label=name, scores=scores)
        t = io.read_table(r / "scores.parquet").drop(columns=["task", "failed", "cluster", "pair_idx"])
        io.write_table(t, r / "scores.parquet")
        runs.append(r)
    md = report(runs, tmp_path / "out", formats=("png",)).with_name("report.md").read_text()
    t = _md_table(md, "synthetic_vsi: score per question type").set_index("Question type")
    assert t.loc["object_counting", "Δ gasp"] == "+50.0"          # summary difference, no interval
    assert "no paired interval for base -> gasp" in md and "has no task per question" in md


def test_every_feature_source_gets_its_columns_and_figure(tmp_path):
    """q / k / v blocks (any feature source the probe wrote beside its primary one) each get a
    peak column, a delta and an accuracy-vs-layer figure, read from their own summary block."""
    from gaspprobe.reporting.report import report

    def block(peak):
        acc = {"vision": 0.1, "llm.0": peak / 2, "llm.1": peak, "llm.2": peak / 3, "llm.3": 0.0}
        return {"accuracy": {"r0": acc}, "peak_layer": "llm.1", "peak_accuracy": peak}

    a = write_probe(tmp_path / "a", "m1", BASE_ACC, BASE_GAP, label="base",
                    summary_extra={"q": block(0.3), "v": block(0.5)})
    b = write_probe(tmp_path / "b", "m2", GASP_ACC, GASP_GAP, label="gasp",
                    summary_extra={"q": block(0.4), "v": block(0.8)})
    out = tmp_path / "out"
    md = report([a, b], out, formats=("png",)).with_name("report.md").read_text()
    head = _md_table(md, "Headline").set_index("Model")
    assert (head.loc["base", "Peak q (%)"], head.loc["base", "Peak v (%)"]) == ("30.0", "50.0")
    d = _md_table(md, "Base -> GASP deltas").iloc[0]
    assert (d["Δ peak q"], d["Δ peak v"]) == ("+10.0", "+30.0")
    for src in ("hidden", "q", "v"):
        assert (out / "figures" / f"accuracy_vs_layer_{src}.png").is_file()
