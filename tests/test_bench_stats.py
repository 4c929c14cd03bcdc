"""Statistics against naive references: bootstrap intervals (vectorised vs one pandas aggregation
per draw vs a plain-Python loop), the paired delta interval, McNemar's exact test vs scipy, and
``gaspprobe bench compare`` on two real run folders."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gaspprobe.benchmarking import stats
from gaspprobe.benchmarking.metrics import VSI_MCA_TYPES, VSI_NA_TYPES, allangles_micro, vsibench_macro

FIX = Path(__file__).parent / "fixtures" / "bench"


def _vsi_table(seed: int, n: int = 300, clusters: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    types = list(VSI_MCA_TYPES + VSI_NA_TYPES)
    qt = rng.choice(types, n)
    score = np.where(np.isin(qt, VSI_MCA_TYPES), rng.integers(0, 2, n), rng.integers(0, 11, n) / 10)
    from gaspprobe.benchmarking.metrics import VSI_TASK_OF

    return pd.DataFrame({"id": [str(i) for i in range(n)], "question_type": qt,
                         "task": [VSI_TASK_OF[t] for t in qt], "score": score.astype(float),
                         "cluster": [f"v{c}" for c in rng.integers(0, clusters, n)], "pair_idx": None})


def _aa_table(seed: int, n: int = 200, clusters: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cats = ["counting", "manipulation", "relative_direction", "relative_distance"]
    t = rng.choice(cats, n)
    return pd.DataFrame({"id": [str(i) for i in range(n)], "question_type": t, "task": t,
                         "score": rng.integers(0, 2, n).astype(float),
                         "cluster": [f"s{c}" for c in rng.integers(0, clusters, n)], "pair_idx": None})


def _naive_draw(df: pd.DataFrame, picks_row) -> pd.DataFrame:
    """One cluster-bootstrap sample written the obvious way: the rows of each drawn cluster, in turn."""
    names = list(pd.unique(df["cluster"].astype(str)))
    return pd.concat([df[df["cluster"] == names[c]] for c in picks_row], ignore_index=True)


@pytest.mark.parametrize("table,agg", [(_vsi_table, vsibench_macro), (_aa_table, allangles_micro)])
def test_vectorised_bootstrap_equals_the_card_aggregation_on_every_draw(table, agg):
    df = table(0)
    codes = stats._clusters(df)
    picks = stats._picks(int(codes.max()) + 1, 40, seed=3)
    ov, tasks = stats.boot_stats(df, agg, picks, codes)
    for b in range(len(picks)):
        ref = agg(_naive_draw(df, picks[b]))
        assert ov[b] == pytest.approx(ref["overall"], abs=1e-9)
        for t, v in ref["tasks"].items():
            assert tasks[t][b] == pytest.approx(v, abs=1e-9)
        for t in set(tasks) - set(ref["tasks"]):  # a task this draw lost entirely
            assert np.isnan(tasks[t][b])


def test_generic_path_equals_the_vectorised_one():
    df = _aa_table(1)

    def renamed(d):  # the same aggregation under a name without a vectorised twin
        return allangles_micro(d)

    codes = stats._clusters(df)
    picks = stats._picks(int(codes.max()) + 1, 25, seed=0)
    a = stats.boot_stats(df, allangles_micro, picks, codes)
    b = stats.boot_stats(df, renamed, picks, codes)
    np.testing.assert_allclose(a[0], b[0])
    for t in a[1]:
        np.testing.assert_allclose(a[1][t], b[1][t])


def test_unclustered_interval_matches_scipy_percentile_bootstrap():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, 400).astype(float)
    df = pd.DataFrame({"id": range(400), "question_type": "q", "task": "q", "score": x})
    ci = stats.bootstrap_intervals(df, allangles_micro, n_boot=4000, seed=1)
    ref = bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=2).confidence_interval
    assert ci["clusters"] == 400
    assert ci["overall"][0] == pytest.approx(100 * ref.low, abs=1.0)
    assert ci["overall"][1] == pytest.approx(100 * ref.high, abs=1.0)


def test_clustering_widens_the_interval_when_questions_share_a_video():
    # 30 videos; every question about a video gets the same score: the effective n is 30, not 300
    rng = np.random.default_rng(0)
    v = rng.integers(0, 2, 30).astype(float)
    df = pd.DataFrame({"id": range(300), "question_type": "q", "task": "q", "score": np.repeat(v, 10),
                       "cluster": np.repeat([f"v{i}" for i in range(30)], 10)})
    clustered = stats.bootstrap_intervals(df, allangles_micro, seed=0)
    naive = stats.bootstrap_intervals(df.drop(columns=["cluster"]), allangles_micro, seed=0)
    w = lambda c: c["overall"][1] - c["overall"][0]  # noqa: E731
    assert clustered["clusters"] == 30 and w(clustered) > 2.5 * w(naive)
    # close to the normal approximation with n = 30 clusters
    p = v.mean()
    assert w(clustered) == pytest.approx(100 * 2 * 1.96 * np.sqrt(p * (1 - p) / 30), rel=0.2)


@pytest.mark.parametrize("n10,n01", [(0, 0), (3, 0), (0, 7), (5, 9), (12, 12), (1, 20), (30, 41)])
def test_mcnemar_exact_matches_scipy_binomtest(n10, n01):
    from scipy.stats import binomtest

    a = [True] * n10 + [False] * n01 + [True] * 4 + [False] * 6
    b = [False] * n10 + [True] * n01 + [True] * 4 + [False] * 6
    m = stats.mcnemar_exact(a, b)
    assert (m["a_only"], m["b_only"]) == (n10, n01)
    ref = 1.0 if n10 + n01 == 0 else binomtest(n10, n10 + n01, 0.5).pvalue
    assert m["p"] == pytest.approx(ref, rel=1e-12)


def _naive_paired(a: pd.DataFrame, b: pd.DataFrame, agg, picks) -> list[float]:
    out = []
    for row in picks:
        da, db = _naive_draw(a, row), _naive_draw(b, row)
        out.append(agg(db)["overall"] - agg(da)["overall"])
    return out


def test_paired_delta_interval_against_a_naive_loop_and_its_verdicts():
    a = _aa_table(2)
    better = a.copy()
    flip = a.index[a["score"] == 0][:40]  # B fixes 40 of A's mistakes, spread over clusters
    better.loc[flip, "score"] = 1.0
    res = stats.paired_comparison(a, better, allangles_micro, n_boot=300, seed=5)
    codes = stats._clusters(a)
    picks = stats._picks(int(codes.max()) + 1, 300, seed=5)
    lo, hi = np.quantile(_naive_paired(a, better, allangles_micro, picks), [0.025, 0.975])
    o = res["overall"]
    assert o["delta"] == pytest.approx(100 * 40 / len(a))
    assert (o["delta_low"], o["delta_high"]) == pytest.approx((lo, hi))
    assert o["significant"] and o["a_only"] == 0 and o["b_only"] == 40
    same = stats.paired_comparison(a, a.copy(), allangles_micro, n_boot=100)
    assert same["overall"]["delta"] == 0 and not same["overall"]["significant"]
    assert same["overall"]["mcnemar_p"] == 1.0


def test_paired_comparison_matches_rows_by_id_not_position():
    a = _aa_table(3)
    b = a.sample(frac=1.0, random_state=0)  # same scores, shuffled rows
    res = stats.paired_comparison(a, b, allangles_micro, n_boot=50)
    assert res["overall"]["delta"] == 0 and res["overall"]["delta_low"] == 0 == res["overall"]["delta_high"]


class Recorder:
    name = "recorder"

    def generate(self, batch, max_new_tokens=16):
        return ["A"] * len(batch)


def test_bench_compare_cli_on_two_runs(tmp_path, capsys):
    from gaspprobe.benchmarking.runner import run
    from gaspprobe.cli import main

    a = run("baseline:random", "vsibench", FIX / "vsi", tmp_path / "a", frames=2, label="base")
    b = run("oracle:answers", "vsibench", FIX / "vsi", tmp_path / "b", frames=2, label="gasp")
    r = stats.compare_runs(tmp_path / "a", tmp_path / "b")
    assert r["overall"]["delta"] == pytest.approx(b.overall - a.overall)
    assert r["a"]["label"] == "base" and r["b"]["profile"] == "gaspprobe" and r["n"] == 12
    assert r["clusters"] == 2  # two videos
    assert r["tasks"]["object_counting"]["mcnemar_p"] is None  # numerical task: no McNemar
    assert r["tasks"]["object_rel_direction"]["mcnemar_p"] is not None
    with pytest.raises(SystemExit) as ok:
        main(["bench", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert ok.value.code == 0
    out = capsys.readouterr().out
    assert "gasp (profile gaspprobe)" in out and "overall" in out and "McNemar" in out
    run(Recorder(), "vsibench", FIX / "vsi", tmp_path / "v", frames=2, profile="vlmevalkit")
    with pytest.raises(SystemExit) as ok3:
        main(["bench", "compare", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "v")])
    assert ok3.value.code == 0
    out3 = capsys.readouterr().out
    assert "side by side" in out3 and "profile vlmevalkit" in out3 and "C = recorder" in out3
    run("oracle:answers", "allangles", FIX / "allangles", tmp_path / "c")
    with pytest.raises(SystemExit) as e:
        main(["bench", "compare", str(tmp_path / "a"), str(tmp_path / "c")])
    assert e.value.code == 2


def test_summary_carries_intervals_that_contain_the_estimate(tmp_path):
    from gaspprobe.benchmarking.runner import run

    r = run("baseline:random", "allangles", FIX / "allangles", tmp_path / "r")
    ci = r.summary["ci"]
    assert ci["level"] == 0.95 and ci["clusters"] == 2
    assert ci["overall"][0] <= r.overall <= ci["overall"][1]
    random.seed(0)
