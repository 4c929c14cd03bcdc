"""gaspprobe.tables: schemas round-trip, and the three numbers against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from gaspprobe import tables as T
from gaspprobe.errors import DataError


def _probe_df():
    return pd.DataFrame({"model": ["m", "m"], "scene": [None, "s0"], "layer": [None, "llm.0"],
                         "gap": [None, 2], "metric": ["chance", "hidden/acc_r0"],
                         "value": [0.25, float("nan")], "n": [4, 0]})


def test_probe_table_round_trip_with_version_and_unit(tmp_path):
    p = T.write_table(_probe_df(), tmp_path / "probe.parquet", T.PROBE, patch_unit="vision_patch")
    assert T.table_meta(p) == {"table": "probe", "version": T.PROBE.version}
    df = T.read_table(p, T.PROBE)
    assert list(df.columns) == T.PROBE.names
    assert str(df["gap"].dtype) == "Int64" and df["gap"].isna().tolist() == [True, False]
    assert df["patch_unit"].tolist() == ["vision_patch"] * 2
    assert (tmp_path / "probe.csv").is_file()


def test_unversioned_old_table_still_reads(tmp_path):
    p = tmp_path / "probe.parquet"
    _probe_df().to_parquet(p, index=False)  # how runs were written before schemas
    assert T.table_meta(p) == {"version": 0}
    df = T.read_table(p, T.PROBE)
    assert df["patch_unit"].tolist() == ["llm_token"] * 2


def test_bad_tables_are_one_line_errors(tmp_path):
    p = tmp_path / "probe.parquet"
    _probe_df().drop(columns=["n"]).to_parquet(p, index=False)
    with pytest.raises(DataError, match=r"probe\.parquet.*lacks columns \['n'\]"):
        T.read_table(p, T.PROBE)
    T.write_table(_probe_df(), p, T.PROBE)
    with pytest.raises(DataError, match="is a 'probe' table, expected 'bench'"):
        T.read_table(p, T.BENCH)
    (tmp_path / "x.parquet").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable parquet"):
        T.read_table(tmp_path / "x.parquet", T.PROBE)


def test_bench_table_schema(tmp_path):
    df = pd.DataFrame({"model": ["m"], "benchmark": ["b"], "id": ["1"], "question_type": ["q"],
                       "prediction": ["3"], "parsed": ["3"], "target": ["3"], "score": [1]})
    out = T.read_table(T.write_table(df, tmp_path / "scores.parquet", T.BENCH), T.BENCH)
    assert out["score"].dtype == "float64" and out["failed"].tolist() == [""]
    assert T.schema_versions("bench", "probe") == {"bench": 1, "probe": 2}


def test_pooled_and_gap_balanced():
    assert T.pooled_accuracy([3, 1], [4, 6]) == (0.4, 10)
    v, n = T.pooled_accuracy([], [])
    assert math.isnan(v) and n == 0
    # gap 1 has 90 matches at 0.9, gap 8 has 10 at 0.1: pooled 0.82, balanced 0.5
    assert T.pooled_accuracy([81, 1], [90, 10])[0] == pytest.approx(0.82)
    assert T.gap_balanced_accuracy({1: 0.9, 8: 0.1, 16: float("nan")}, {1: 90, 8: 10, 16: 0}) == (0.5, 2)


def test_peak_layer_rules():
    assert T.peak_layer({"vision": 0.9, "llm.0": 0.2, "llm.1": 0.5, "llm.2": 0.5}) == "llm.1"  # tie: earliest
    assert T.peak_layer({"vision": 0.3}) == "vision"  # no LLM layer: all layers
    assert T.peak_layer({"llm.0": float("nan"), "llm.1": 0.1}) == "llm.1"
    assert T.peak_layer({"llm.0": float("nan")}) is None


def test_robustness_hand_computed():
    r = T.robustness({1: 0.5, 4: 0.25, 24: 0.1}, {1: 10, 4: 10, 24: 5})
    assert r.value == pytest.approx((0.5 + 0.2) / 2)
    assert r.ratios == {1: 1.0, 4: 0.5, 24: pytest.approx(0.2)}
    assert (r.base_gap, r.max_gap, r.n) == (1, 24, 25) and r.at_max_gap == pytest.approx(0.2)
    # gaps without matches are left out; base = smallest gap WITH matches
    r = T.robustness({1: 0.9, 2: 0.4, 4: 0.2}, {1: 0, 2: 8, 4: 8})
    assert r.base_gap == 2 and r.value == pytest.approx(0.5)
    assert "fewer than two" in T.robustness({1: 0.5}, {1: 3}).reason
    assert "is 0" in T.robustness({1: 0.0, 2: 0.1}, {1: 3, 2: 3}).reason


def test_robustness_na_near_chance():
    # chance 0.1 over 100 matches: s.e. 0.03; 0.15 is within 2 s.e., 0.17 is not
    r = T.robustness({1: 0.15, 2: 0.1}, {1: 100, 2: 100}, chance_by_gap={1: 0.1, 2: 0.1})
    assert not r.defined and "within noise of chance" in r.reason
    r = T.robustness({1: 0.17, 2: 0.1}, {1: 100, 2: 100}, chance_by_gap={1: 0.1, 2: 0.1})
    assert r.defined and r.value == pytest.approx(0.1 / 0.17)


def test_validation_summary_from_hits():
    hits = {("vision", 1): 9, ("vision", 2): 1, ("llm.0", 1): 5, ("llm.0", 2): 2, ("llm.1", 1): 8, ("llm.1", 2): 4}
    v = T.ValidationSummary.from_hits(100, hits, {1: 10, 2: 10})
    assert v.peak_layer == "llm.1" and v.peak_accuracy == pytest.approx(0.6) and v.n == 20
    assert v.robustness == pytest.approx(0.5)


def test_probe_summary_from_old_and_new_dicts():
    old = {"model": "m", "peak_layer": "llm.1", "peak_accuracy": 0.3, "chance": 0.01, "robustness": 0.6,
           "robustness_ratios": {"1": 1.0, "2": 0.6}, "confidence_spearman": {"llm.1": 0.2}}
    s = T.ProbeSummary.from_dict(old, label="base")
    assert (s.headline_r, s.patch_unit, s.label, s.peak_rho) == (0, "llm_token", "base", 0.2)
    assert s.chance == 0.01 and s.normalized_by_gap == {"1": 1.0, "2": 0.6}
    new = {**old, "headline_r": 2, "peak_accuracy": 0.7, "chance_r2": 0.09}
    s = T.ProbeSummary.from_dict(new)
    assert (s.peak_accuracy, s.chance, s.chance_r0) == (0.7, 0.09, 0.01)
