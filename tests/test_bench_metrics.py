"""Metrics and aggregation against naive references and hand-computed tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gaspprobe.benchmarking.card import Sample
from gaspprobe.benchmarking.metrics import (MRA_THRESHOLDS, allangles_micro, chance_scores, mean_relative_accuracy,
                                            most_frequent_answers, mra, paired_consistency, vsibench_macro)


def naive_mra(pred, target):
    """The official formula written out with a Python loop (thresholds as the official code builds them)."""
    start, end, interval = 0.5, 0.95, 0.05
    conf = np.linspace(start, end, int((end - start) / interval + 2))
    if pred is None:
        return 0.0
    hits = [1.0 if abs(pred - target) / target <= 1 - c else 0.0 for c in conf]
    return sum(hits) / len(hits)


def test_exactly_ten_thresholds():
    assert len(MRA_THRESHOLDS) == 10
    assert MRA_THRESHOLDS[0] == 0.5 and MRA_THRESHOLDS[-1] == 0.95
    np.testing.assert_allclose(np.diff(MRA_THRESHOLDS), 0.05)


def test_mra_matches_naive_reference():
    rng = np.random.default_rng(0)
    target = rng.uniform(0.1, 50, 2000)
    pred = target * rng.uniform(-0.2, 2.2, 2000)
    pred[::7] = target[::7] * (1 + rng.choice([-0.5, -0.25, 0.05, 0.3, 0.45], size=len(pred[::7])))  # ties
    got = mean_relative_accuracy(pred, target).numpy()
    ref = np.array([naive_mra(p, t) for p, t in zip(pred, target)])
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("pred,target,expected", [
    (10.0, 10.0, 1.0), (11.0, 10.0, 0.9), (15.0, 10.0, 0.1), (5.0, 10.0, 0.1), (16.0, 10.0, 0.0),
    (None, 10.0, 0.0), (-10.0, 10.0, 0.0), (10.4, 10.0, 1.0), (10.6, 10.0, 0.9),
])
def test_mra_hand_values(pred, target, expected):
    assert mra(pred, str(target)) == pytest.approx(expected)


def _vsi_table():
    rows = {
        "object_counting": [1.0, 0.5], "object_abs_distance": [0.2], "object_size_estimation": [0.4, 0.6],
        "room_size_estimation": [0.0], "object_rel_distance": [1, 0, 0, 1],
        "object_rel_direction_easy": [1, 1], "object_rel_direction_medium": [0], "object_rel_direction_hard": [1, 0, 0],
        "route_planning": [1], "obj_appearance_order": [0, 1],
    }
    return pd.DataFrame([{"question_type": k, "score": float(v)} for k, vs in rows.items() for v in vs])


def test_vsibench_aggregation_hand_computed():
    a = vsibench_macro(_vsi_table())
    # rel-direction: unweighted mean of the three difficulty means (1 + 0 + 1/3) / 3, not the pooled 3/6
    assert a["tasks"]["object_rel_direction"] == pytest.approx(100 * 4 / 9)
    expected = (0.75 + 0.2 + 0.5 + 0.0 + 0.5 + 4 / 9 + 1.0 + 0.5) / 8
    assert a["overall"] == pytest.approx(100 * expected)
    assert len(a["tasks"]) == 8
    assert a["overall_micro"] == pytest.approx(100 * _vsi_table()["score"].mean())
    assert a["question_types"]["object_rel_direction_hard"] == pytest.approx(100 / 3)


def test_vsibench_aggregation_matches_published_gpt4o_average():
    # official table v1, GPT-4o per-task scores average to the reported 34.0
    tasks = [46.2, 5.3, 43.8, 38.2, 37.0, 41.3, 31.5, 28.5]
    names = ["object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation",
             "object_rel_distance", "object_rel_direction_easy", "route_planning", "obj_appearance_order"]
    df = pd.DataFrame({"question_type": names, "score": [t / 100 for t in tasks]})
    assert round(vsibench_macro(df)["overall"], 1) == 34.0


def test_chance_reproduces_published_rel_direction_row():
    mk = lambda qt, n: Sample(id=qt, question_type=qt, kind="mca", prompt="", target="A", task="object_rel_direction",
                              options={chr(65 + i): str(i) for i in range(n)})
    s = [mk("object_rel_direction_easy", 2), mk("object_rel_direction_medium", 3), mk("object_rel_direction_hard", 4)]
    df = pd.DataFrame({"question_type": [x.question_type for x in s], "score": chance_scores(s)})
    assert round(vsibench_macro(df)["tasks"]["object_rel_direction"], 1) == 36.1  # official "Chance (Random)"
    na = Sample(id="n", question_type="object_counting", kind="na", prompt="", target="2", task="object_counting")
    assert chance_scores([na]) == [None]


def test_most_frequent_answer_ties_are_deterministic():
    mk = lambda i, qt, t: Sample(id=str(i), question_type=qt, kind="mca", prompt="", target=t, task=qt)
    s = [mk(0, "a", "B"), mk(1, "a", "A"), mk(2, "a", "B"), mk(3, "b", "C"), mk(4, "b", "A")]
    assert most_frequent_answers(s) == {"a": "B", "b": "A"}


def test_allangles_micro_and_paired_consistency():
    rows = [
        # category, pair_idx, score
        ("counting", None, 1), ("counting", None, 0), ("counting", None, 1),
        ("relative_direction", 1, 1), ("relative_direction", 1, 1),  # CC
        ("relative_direction", 2, 0), ("relative_direction", 2, 0),  # WW
        ("relative_direction", 3, 1), ("relative_direction", 3, 0),  # IC
        ("relative_direction", 4, 0), ("relative_direction", 4, 1),  # IC
        ("manipulation", 9, 1), ("manipulation", 9, 1), ("manipulation", 10, 0),  # one pair + a lone question
    ]
    df = pd.DataFrame([{"task": c, "question_type": c, "pair_idx": p, "score": float(s)} for c, p, s in rows])
    a = allangles_micro(df)
    assert a["overall"] == pytest.approx(100 * 8 / 14)  # micro: every question counts once
    assert a["tasks"]["counting"] == pytest.approx(200 / 3)
    assert a["overall_macro"] == pytest.approx(100 * (2 / 3 + 4 / 8 + 2 / 3) / 3)
    pc = paired_consistency(df)
    assert "counting" not in pc
    assert pc["relative_direction"] == {"pairs": 4, "CC": 25.0, "WW": 25.0, "IC": 50.0, "unpaired": 0}
    assert pc["manipulation"]["pairs"] == 1 and pc["manipulation"]["CC"] == 100.0 and pc["manipulation"]["unpaired"] == 1
