"""Benchmark cards, generated over the BENCHMARKS registry: every card loads its schema fixture, every
sample validates, the oracle scores 100 through the public ``gaspprobe.bench``, and the prompts
match their snapshot. Then the format-specific rules (parsers, circular, chance-adjusted accuracy)
against naive references and hand-written cases, the local file types and the hub path, and bad
rows (one-line errors naming file, row and field).

Snapshots: ``tests/fixtures/bench/prompt_snapshots/<card>.json``, regenerated with
``python tests/fixtures/bench/make_new_fixtures.py --snapshots`` (review the diff: a prompt change
also needs the card's ``version`` bumped).
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import gaspprobe
from gaspprobe.benchmarking.card import load_card
from gaspprobe.benchmarking.formats import common as C
from gaspprobe.benchmarking.registry import AGGREGATIONS, BENCHMARKS, LOADERS, METRICS, PARSERS
from gaspprobe.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "bench"
SNAPSHOTS = FIX / "prompt_snapshots"

# card -> (question data, loader keyword arguments): the fixture each registered card is tested on
CARD_FIXTURES: dict[str, tuple[Path, dict]] = {
    "vsibench": (FIX / "vsi", {}),
    "synthetic_vsi": (FIX / "vsi", {}),
    "vsibench_debiased": (FIX / "vsi_debiased", {"video_root": FIX / "vsi"}),
    "allangles": (FIX / "allangles" / "data.json", {}),
    "synthetic_allangles": (FIX / "allangles" / "data.json", {}),
    "blink_multiview": (FIX / "blink" / "Multi-view_Reasoning.parquet", {}),
    "blink_correspondence": (FIX / "blink" / "Visual_Correspondence.parquet", {}),
    "blink_depth": (FIX / "blink" / "Relative_Depth.parquet", {}),
    "blink_spatial": (FIX / "blink" / "Spatial_Relation.parquet", {}),
    "synthetic_blink": (FIX / "blink", {}),  # the real layout: one file per subtask config
    "mmsi": (FIX / "mmsi", {}),
    "cvbench_3d": (FIX / "cvbench", {}),
    "threedsr": (FIX / "threedsr" / "3dsr", {}),
    "threedsr_circular": (FIX / "threedsr" / "3dsr_circular", {}),
    "viewspatial": (FIX / "viewspatial", {}),
    "mindcube_tiny": (FIX / "mindcube", {}),
    "embspatial": (FIX / "embspatial", {}),
    "sitebench_image": (FIX / "sitebench", {}),
    "sparbench_tiny": (FIX / "sparbench", {}),
    "sitebench_video": (FIX / "sitebench_video", {}),
}
# the named non-default prompt variants that change which samples exist (snapshotted too)
EXTRA_VARIANTS = {name: ["circular"] for name in CARD_FIXTURES if "blink" in name}
CARDS = BENCHMARKS.names()


@pytest.fixture(autouse=True)
def _image_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GASPPROBE_IMAGE_CACHE", str(tmp_path_factory.getbasetemp() / "image_cache"))


def _samples(name: str, variant: str | None = None):
    card = load_card(name)
    data, kw = CARD_FIXTURES[name]
    return card, LOADERS.get(card.format)(card, data, prompt_variant=variant, **kw)


def test_every_registered_card_has_a_fixture():
    assert set(CARDS) == set(CARD_FIXTURES), "add the new card's fixture to CARD_FIXTURES"


# --------------------------------------------------------------------------- generated over the registry
@pytest.mark.parametrize("name", CARDS)
def test_card_loads_its_fixture_and_every_sample_validates(name):
    card, samples = _samples(name)
    assert card.name == name and card.version and card.source.strip()
    assert card.dataset.hf_id or card.synthetic
    PARSERS.get(card.parser)
    for p in card.parsers:
        PARSERS.get(p)
    AGGREGATIONS.get(card.aggregation)
    for m in card.metrics.values():
        METRICS.get(m)
    assert samples and len({s.id for s in samples}) == len(samples)
    parse = PARSERS.get(card.parser)
    for s in samples:
        assert s.kind in ("mca", "na") and s.prompt.strip() and s.task
        assert s.kind in card.metrics
        if s.kind == "mca":
            assert len(s.options) >= 2 and s.target in s.options
            assert list(s.options) == list(C.LETTERS[: len(s.options)])  # letters run A, B, ... in order
        # the ground truth, read by the card's own parser, gets full marks from the card's metric
        assert METRICS.get(card.metrics[s.kind])(parse(s.target, s), s.target) == pytest.approx(1.0), s.id
        files = [s.visual["video"]] if "video" in s.visual else s.visual["images"]
        assert files and all(Path(f).is_file() for f in files), (s.id, files)


@pytest.mark.parametrize("name", CARDS)
def test_oracle_scores_100_through_the_public_api(name, tmp_path):
    data, kw = CARD_FIXTURES[name]
    r = gaspprobe.bench("oracle:answers", name, data, tmp_path / "run", progress=False, **kw)
    s = r.summary
    if name.startswith("sitebench_") and (s["overall"] is None or s["overall"] != s["overall"]):
        pytest.xfail("chance-adjusted accuracy needs the scores table's n_options column (requested from the "
                     "owner of benchmarking/scoring.py); test_site_oracle_caa_is_100 checks the aggregation")
    assert s["overall"] == pytest.approx(100.0)
    assert s["parse_failures"] == 0 and s["n_failed"] == 0
    assert s["tasks"] and all(v == pytest.approx(100.0) for v in s["tasks"].values())


def _snapshot(name: str) -> dict:
    out = {}
    for variant in [None] + EXTRA_VARIANTS.get(name, []):
        _, samples = _samples(name, variant)
        out[variant or "default"] = {s.id: {"prompt": s.prompt, "target": s.target, "options": s.options}
                                     for s in samples}
    return out


@pytest.mark.parametrize("name", CARDS)
def test_prompts_match_the_snapshot(name):
    path = SNAPSHOTS / f"{name}.json"
    assert path.is_file(), f"no snapshot for {name}: run python tests/fixtures/bench/make_new_fixtures.py --snapshots"
    assert _snapshot(name) == json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- exact prompts (hand-written)
def test_blink_prompt_is_the_lmms_eval_text():
    _, s = _samples("blink_depth")
    assert s[0].prompt == (
        "Note: You only need to respond with A, B without providing any additional information.\n"
        "Two points are circled on the image, labeled by A and B beside each circle. Which point is closer to "
        "the camera?\nSelect from the following choices.\n(A) A is closer\n(B) B is closer")
    assert s[0].target == "A" and len(s[0].visual["images"]) == 1


def test_cvbench_and_threedsr_and_viewspatial_prompts():
    _, cv = _samples("cvbench_3d")
    assert cv[0].prompt.startswith("Note: You only need to respond with A, B without providing any additional "
                                   "information.\n\nWhich object is closer")  # the harness's blank line
    _, t = _samples("threedsr")
    assert t[0].prompt == ("Question: Which object is higher in the 3D world space, the lamp or the clock?\n"
                           "Options:\nA. the lamp\nB. the clock\n"
                           "Please select the correct answer from the options above. \n")
    _, v = _samples("viewspatial")
    assert v[0].prompt == ("Question: Could you tell me the location of the counter in comparison to the "
                           "refrigerator?\nChoices: A. right\nB. front-up\nC. back-left\nD. front\n"
                           "Reply only to the corresponding option.\nAnswer:")
    assert v[0].target == "A" and v[1].target == "C"


def test_mmsi_site_mindcube_embspatial_prompts():
    _, m = _samples("mmsi")
    assert m[1].prompt.endswith("D: Did not move\nAnswer with the option's letter from the given choices "
                                "directly. Enclose the option's letter within ``.")
    assert m[1].options == {"A": "Turned left", "B": "Turned right", "C": "Moved up", "D": "Did not move"}
    assert m[0].task == "Positional Relationship (Cam.\u2013Obj.)"  # lmms-eval's alias to an en dash
    _, site = _samples("sitebench_image")
    assert site[0].prompt == "Question: How many cups are on the table?\nOptions:\nA: 1\nB: 2\nC: 3\nD: 4"
    card, site_pp = LOADERS.get("sitebench"), None
    c = load_card("sitebench_image")
    site_pp = card(c, FIX / "sitebench", prompt_variant="post_prompt")
    assert site_pp[0].prompt.endswith("D: 4\nGive me the answer letter directly. The best answer is:")
    _, mc = _samples("mindcube_tiny")
    assert "<image>" not in mc[0].prompt and mc[0].prompt.startswith("View 1:\nView 2:\nFrom the second view")
    assert [s.task for s in mc] == ["around", "among", "rotation"] and mc[1].cluster == "among_group693"
    _, e = _samples("embspatial")
    assert e[0].prompt == ("Note: You only need to respond with A, B, C, D without providing any additional "
                           "information.\nHow is the sofa positioned in relation to the lamp?\n"
                           "A) left\nB) right\nC) above\nD) below")
    assert [s.target for s in e] == ["B", "C", "B"]


# --------------------------------------------------------------------------- parsers (hand-written cases)
def _mca(options: str = "AB", sid: str = "0"):
    from gaspprobe.benchmarking.card import Sample

    return Sample(id=sid, question_type="t", kind="mca", prompt="", target="A", task="t",
                  options={k: f"opt {k}" for k in options})


@pytest.mark.parametrize("raw, want", [("A", "A"), ("(B) right", "B"), ("b.", "B"), ("  A) left", "A"),
                                       ("The answer is B", None), ("", None), ("C", None)])
def test_lmms_eval_letter_prefix(raw, want):
    # lmms-eval's docstring cases; "The answer is B" reads as "T" (wrong), "C" is no option of two
    assert PARSERS.get("lmms_eval_letter_prefix")(raw, _mca()) == want


@pytest.mark.parametrize("raw, want", [
    # lmms-eval 0.7.3's docstring cases
    ("A answer1", "A"), ("A) answer2", "A"), ("(B) answer", "B"), ("C", "C"), ("(C)", "C"), ("A.", "A"),
    ("The correct answer is (B).", "B"), ("I think the answer is C because ...", "C"),
    # letters outside this question's options never count: "D" of four-option letters is no option of three
    ("D", None), ("The answer is D, not A", None),
    # the LAST statement wins; then the last parenthesised letter; then a leading letter
    ("answer: A ... final answer: B", "B"), ("(A) or maybe (C)", "C"), ("b is right", "B"),
    ("Bananas", "B"), ("no letter here", None), ("", None)])
def test_lmms_eval_073_letter(raw, want):
    assert PARSERS.get("lmms_eval_073_letter")(raw, _mca("ABC")) == want


@pytest.mark.parametrize("raw, want", [("`B`", "B"), ("``C``", "C"), ("{d}", "D"), ("The answer is A.", "A"),
                                       ("A dog is left", None), ("(B)", "B"), ("no idea", None)])
def test_mmsi_backtick(raw, want):
    assert PARSERS.get("mmsi_backtick")(raw, _mca("ABCD")) == want


@pytest.mark.parametrize("raw, want", [("A. yes", "A"), ("B", "B"), ("Answer: C", "C"), ("I think (D)", "D"),
                                       ("the answer is b", None), ("It is C.", "C"), ("", None)])
def test_threedsr_patterns(raw, want):
    assert PARSERS.get("threedsr_patterns")(raw, _mca("ABCD")) == want


@pytest.mark.parametrize("raw, want", [("I think A.\nThen B. Final: C.", "C"), ("<Answer> my answer is B", "B"),
                                       ("B", "B"), ("**D**", "D"), ("none", None)])
def test_mindcube_extract(raw, want):
    assert PARSERS.get("mindcube_extract")(raw, _mca("ABCDE")) == want


@pytest.mark.parametrize("raw, want", [("Looking at it.\nB", "B"), ("A\nI am not sure", None), ("c", "C")])
def test_viewspatial_last_line(raw, want):
    assert PARSERS.get("viewspatial_last_line")(raw, _mca("ABCD")) == want


def test_site_parser_rules_and_seeded_fallback():
    s = _mca("ABCD", sid="q7")
    site, strict = PARSERS.get("site_mmmu"), PARSERS.get("site_mmmu_strict")
    assert site("(B) because", s) == "B" and site("I pick C here", s) == "C" and site("D.", s) == "D"
    assert site("A or B? I say B", s) == "B"  # several candidates: the last " X " wins
    # several ":" candidates and no " X " at all: rfind is -1 for both, np.argmax takes the first
    assert site("A: no, wait, B: yes", s) == "A"
    assert strict("nothing here", s) is None
    want = random.Random("site:q7").choice(["A", "B", "C", "D"])  # the official random fallback, seeded by id
    assert site("nothing here", s) == want == site("still nothing", s)


# --------------------------------------------------------------------------- metrics vs naive references
def test_rotations_match_a_naive_rotation():
    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(2, 6)
        opts = [f"o{k}" for k in range(n)]
        ans = rng.randrange(n)
        got = C.rotations(opts, ans)
        assert len(got) == n and got[0] == (opts, ans)
        for k, (rot, a) in enumerate(got):
            naive = opts[k:] + opts[:k]  # shift left by k
            assert rot == naive and rot[a] == opts[ans]
        assert sorted(tuple(r) for r, _ in got) == sorted({tuple(r) for r, _ in got})  # all distinct


def test_group_scores_and_circular_micro_match_naive_loops():
    import pandas as pd

    rng = random.Random(1)
    for _ in range(30):
        rows = []
        for q in range(rng.randint(1, 8)):
            for _ in range(rng.randint(1, 4)):
                rows.append({"pair_idx": f"q{q}" if rng.random() < 0.8 else None, "score": float(rng.random() < 0.6),
                             "task": rng.choice(["t1", "t2"]), "question_type": "x"})
        df = pd.DataFrame(rows)
        groups: dict = {}
        for k, r in enumerate(rows):  # naive: a dict of lists, all() per group
            groups.setdefault(r["pair_idx"] if r["pair_idx"] is not None else ("row", k), []).append(r["score"])
        naive = sum(all(v == 1.0 for v in g) for g in groups.values()) / len(groups)
        out = C.circular_micro(df)
        assert out["overall"] == pytest.approx(100 * naive)
        assert out["overall_micro"] == pytest.approx(100 * sum(r["score"] for r in rows) / len(rows))


def test_circular_accuracy_hand_case():
    import pandas as pd

    df = pd.DataFrame({"pair_idx": ["a", "a", "b", "b", None], "score": [1.0, 1.0, 1.0, 0.0, 1.0],
                       "task": ["t"] * 5, "question_type": ["t"] * 5})
    out = AGGREGATIONS.get("circular_micro")(df)
    assert out["overall"] == pytest.approx(200 / 3)  # a right, b wrong, the lone row right
    assert out["overall_micro"] == pytest.approx(80.0) and out["n_per_task"] == {"t": 3}


def test_threedsr_circular_keys_and_aggregation():
    import pandas as pd

    from gaspprobe.benchmarking.formats.threedsr import circular_key, flip_key, threedsr_circular

    assert circular_key("VIN6MS3J-flip-1") == "VIN6MS3J-flip" and circular_key("VIN6MS3J-2") == "VIN6MS3J"
    assert flip_key("VIN6MS3J-flip-1") == "VIN6MS3J-1"
    df = pd.DataFrame({"pair_idx": ["AAAAAAAA", "AAAAAAAA", "AAAAAAAA-flip", "AAAAAAAA-flip", "BBBBBBBB"],
                       "score": [1.0, 1.0, 1.0, 0.0, 1.0], "task": ["x"] * 5, "question_type": ["x"] * 5})
    out = threedsr_circular(df)
    assert out["overall"] == pytest.approx(200 / 3)  # groups A (right), A-flip (wrong), B (right)
    assert out["extra"]["flip_circular_accuracy"] == pytest.approx(50.0)  # base ids A (wrong), B (right)
    assert out["extra"]["vanilla_accuracy"] == pytest.approx(80.0)


def test_threedsr_circular_fixture_groups_rotations():
    _, s = _samples("threedsr_circular")
    assert [x.pair_idx for x in s].count("VIN6MS3J") == 2 and [x.pair_idx for x in s].count("Q2DOGVWP") == 4
    assert {x.cluster for x in s} == {"VIN6MS3J", "Q2DOGVWP"}  # a question and its flip share an image


def test_chance_adjusted_matches_naive_and_hand_case():
    from gaspprobe.benchmarking.formats.sitebench import chance_adjusted

    assert chance_adjusted([1, 0], [2, 4]) == pytest.approx((0.5 - 0.25) / (0.5 + 0.75))
    assert chance_adjusted([1, 1, 1], [2, 3, 4]) == pytest.approx(1.0)
    rng = random.Random(2)
    for _ in range(30):
        n = [rng.randint(2, 6) for _ in range(rng.randint(1, 20))]
        acc = [float(rng.random() < 0.5) for _ in n]
        num = den = 0.0
        for a, k in zip(acc, n):  # naive: accumulate the two sums in a loop
            num += a - 1 / k
            den += 1 - 1 / k
        assert chance_adjusted(acc, n) == pytest.approx(num / den)
    # a uniform random guesser scores 0 in expectation: expected accuracy 1/n per row
    assert chance_adjusted([1 / k for k in (2, 3, 5)], [2, 3, 5]) == pytest.approx(0.0)


def test_site_oracle_caa_is_100_and_needs_n_options():
    import pandas as pd

    _, samples = _samples("sitebench_image")
    agg = AGGREGATIONS.get("site_caa")
    rows = [{"task": s.task, "question_type": s.question_type, "score": 1.0, "n_options": len(s.options)}
            for s in samples]
    out = agg(pd.DataFrame(rows))
    assert out["overall"] == pytest.approx(100.0) and all(v == pytest.approx(100.0) for v in out["tasks"].values())
    rows[0]["score"] = 0.0  # 4 options wrong: (0 - 1/4 + 1/2 + 2/3) / (3/4 + 1/2 + 2/3)
    assert agg(pd.DataFrame(rows))["overall"] == pytest.approx(100 * (-0.25 + 0.5 + 2 / 3) / (0.75 + 0.5 + 2 / 3))
    no_n = agg(pd.DataFrame([{k: v for k, v in r.items() if k != "n_options"} for r in rows]))
    assert no_n["overall"] != no_n["overall"] and no_n["overall_micro"] == pytest.approx(200 / 3)  # NaN, labelled


def test_blink_circular_scores_a_question_only_when_every_shift_is_right(tmp_path):
    card, samples = _samples("blink_correspondence", "circular")
    assert len(samples) == 2 * 4 and {s.pair_idx for s in samples} == {"val_Visual_Correspondence_1",
                                                                          "val_Visual_Correspondence_2"}
    for s in samples:  # every shift keeps the right answer text under its letter
        assert s.options[s.target] == s.doc["choices"][C.LETTERS.index(s.doc["answer"].strip("()"))]
    import pandas as pd

    # right only on the unshifted question: vanilla 25, circular 0
    df = pd.DataFrame({"pair_idx": [s.pair_idx for s in samples], "task": [s.task for s in samples],
                       "question_type": [s.question_type for s in samples],
                       "score": [1.0 if s.doc["rotation"] == 0 else 0.0 for s in samples]})
    out = AGGREGATIONS.get(card.aggregation)(df)
    assert out["overall"] == 0.0 and out["overall_micro"] == pytest.approx(25.0)
    r = gaspprobe.bench("oracle:answers", "blink_correspondence", CARD_FIXTURES["blink_correspondence"][0],
                        tmp_path / "r", prompt_variant="circular", progress=False)
    assert r.summary["overall"] == pytest.approx(100.0) and r.summary["n"] == 8


# --------------------------------------------------------------------------- local file types and the hub
def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_json_with_image_paths_and_tsv_with_base64_give_the_same_samples(tmp_path):
    # ViewSpatial as the authors' JSON: image_path relative to the file's folder
    _, ref = _samples("viewspatial")
    recs = []
    for k, r in enumerate(_rows(FIX / "viewspatial" / "test.parquet")):
        img = tmp_path / "imgs" / f"{k}.png"
        img.parent.mkdir(exist_ok=True)
        img.write_bytes(r["images"][0]["bytes"])
        recs.append({"question_type": r["question_type"], "image_path": [f"imgs/{k}.png"], "question": r["question"],
                     "answer": r["answer"], "choices": r["choices"]})
    (tmp_path / "ViewSpatial-Bench.json").write_text(json.dumps(recs), encoding="utf-8")
    card = load_card("viewspatial")
    got = LOADERS.get("viewspatial")(card, tmp_path / "ViewSpatial-Bench.json")
    assert [(s.id, s.prompt, s.target, s.options) for s in got] == [(s.id, s.prompt, s.target, s.options) for s in ref]
    assert [Path(s.visual["images"][0]).read_bytes() for s in got] == \
        [Path(s.visual["images"][0]).read_bytes() for s in ref]
    # MMSI as a VLMEvalKit-style TSV: list cells as JSON, images as base64
    import pandas as pd

    _, mref = _samples("mmsi")
    rows = _rows(FIX / "mmsi" / "MMSI_Bench.parquet")
    df = pd.DataFrame([{**r, "images": json.dumps([base64.b64encode(b).decode() for b in r["images"]])}
                       for r in rows])
    df.to_csv(tmp_path / "mmsi.tsv", sep="\t", index=False)
    got = LOADERS.get("mmsi")(load_card("mmsi"), tmp_path / "mmsi.tsv")
    assert [(s.id, s.prompt, s.target) for s in got] == [(s.id, s.prompt, s.target) for s in mref]
    assert [len(s.visual["images"]) for s in got] == [2, 2, 3]
    assert Path(got[2].visual["images"][1]).read_bytes() == rows[2]["images"][1]


@pytest.mark.parametrize("name, file, call", [
    ("blink_depth", FIX / "blink" / "Relative_Depth.parquet", ("BLINK-Benchmark/BLINK", "Relative_Depth", "val")),
    ("viewspatial", FIX / "viewspatial" / "test.parquet", ("oscarqjh/ViewSpatial_lmmseval", "default", "test")),
    ("mmsi", FIX / "mmsi" / "MMSI_Bench.parquet", ("RunsenXu/MMSI-Bench", None, "test")),
])
def test_hub_path_loads_the_configured_dataset_with_images_undecoded(tmp_path, monkeypatch, name, file, call):
    import datasets

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    calls = []
    real = datasets.load_dataset

    def fake_load_dataset(path, name=None, **kw):  # the hub is offline in tests: serve the fixture parquet
        calls.append((path, name, kw))
        return real("parquet", data_files=str(file), split="train", cache_dir=str(tmp_path / "hf"))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    card = load_card(name)
    got = LOADERS.get(card.format)(card, "hf")
    assert calls == [(call[0], call[1], {"split": call[2], "revision": None})]
    _, ref = _samples(name)
    assert [(s.id, s.prompt, s.target) for s in got] == [(s.id, s.prompt, s.target) for s in ref]
    assert [Path(p).read_bytes() for s in got for p in s.visual["images"]] == \
        [Path(p).read_bytes() for s in ref for p in s.visual["images"]]


# --------------------------------------------------------------------------- bad rows
def _write_rows(rows, like: Path, out: Path) -> Path:
    import pyarrow as pa

    schema = pq.read_schema(like)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema if all(set(r) == set(schema.names) for r in rows)
                                        else None), out)
    return out


# card -> (fixture file, field to drop, a mutation giving a wrong-length options list, the field named)
BAD = {
    "blink_depth": (FIX / "blink" / "Relative_Depth.parquet", "prompt",
                    lambda r: r.update(choices=["A is closer", "B is closer", "same"]), "choices"),
    "cvbench_3d": (FIX / "cvbench" / "test_3d.parquet", "answer",
                   lambda r: r.update(choices=["lamp"]), "choices"),
    "mmsi": (FIX / "mmsi" / "MMSI_Bench.parquet", "images",
             lambda r: r.update(question="Where?\nOptions: A: x, B: y, C: z"), "question"),
    "threedsr": (FIX / "threedsr" / "3dsr" / "test.parquet", "category",
                 lambda r: r.update(B=None, C=None, D=None), "options"),
    "viewspatial": (FIX / "viewspatial" / "test.parquet", "choices",
                    lambda r: r.update(choices="A. left"), "choices"),
    "mindcube_tiny": (FIX / "mindcube" / "combined.parquet", "gt_answer",
                      lambda r: r.update(input_prompt=r["input_prompt"].split("A. ")[0] + "A. The lamp"),
                      "input_prompt"),
    "embspatial": (FIX / "embspatial" / "test.parquet", "relation",
                   lambda r: r.update(answer_options=["left"]), "answer_options"),
    "sitebench_image": (FIX / "sitebench" / "image_test.parquet", "visual",
                        lambda r: r.update(options=["only one"]), "options"),
    "sparbench_tiny": (FIX / "sparbench" / "test-00000-of-00001.parquet", "task",
                       lambda r: r.update(answer="E"), "answer"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_row_missing_a_field_names_file_row_and_field(name, tmp_path):
    src, field, _, _ = BAD[name]
    rows = _rows(src)
    del rows[1][field]
    for r in rows:
        r.pop(field, None)
    bad = _write_rows(rows, src, tmp_path / src.name)
    card = load_card(name)
    with pytest.raises(DataError) as e:
        LOADERS.get(card.format)(card, bad)
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg and "row 0" in msg and field in msg, msg


@pytest.mark.parametrize("name", sorted(BAD))
def test_an_options_list_of_the_wrong_length_names_file_row_and_field(name, tmp_path):
    src, _, mutate, named = BAD[name]
    rows = _rows(src)
    mutate(rows[1])
    bad = _write_rows(rows, src, tmp_path / src.name)
    card = load_card(name)
    with pytest.raises(DataError) as e:
        LOADERS.get(card.format)(card, bad)
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg and "row 1" in msg and named in msg, msg


def test_bad_input_reaches_the_cli_as_one_line_exit_2(tmp_path, capsys):
    from gaspprobe.cli import main

    rows = _rows(FIX / "blink" / "Relative_Depth.parquet")
    rows[0]["answer"] = "(C)"
    bad = _write_rows(rows, FIX / "blink" / "Relative_Depth.parquet", tmp_path / "bad.parquet")
    with pytest.raises(SystemExit) as e:
        main(["bench", "run", "--model", "oracle:answers", "--benchmark", "blink_depth", "--data", str(bad),
              "--out", str(tmp_path / "r")])
    assert e.value.code == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "bad.parquet" in err[0] and "row 0" in err[0] and "answer" in err[0], err


def test_unknown_prompt_variant_and_missing_file_are_one_line_errors(tmp_path):
    from gaspprobe.errors import ConfigError

    card = load_card("mmsi")
    with pytest.raises(ConfigError, match="unknown prompt variant 'nope'"):
        LOADERS.get("mmsi")(card, FIX / "mmsi", prompt_variant="nope")
    with pytest.raises(DataError, match="question file not found"):
        LOADERS.get("mmsi")(card, tmp_path / "missing.parquet")
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable .parquet"):
        LOADERS.get("mmsi")(card, tmp_path / "x.parquet")


# --------------------------------------------------------------------------- SPAR-Bench-Tiny rules
def test_spar_exact_match_and_number_rules_with_lmms_eval_quirks():
    from gaspprobe.benchmarking.formats.sparbench import exact_match, process_na

    assert exact_match("B", "b") and exact_match("B. the table", "B") and exact_match("b", "B")
    assert not exact_match("The answer is B", "B")  # first character "t"
    assert exact_match("", "B")  # lmms-eval quirk: an empty reply is "in" every answer
    _, s = _samples("sparbench_tiny")
    mca = s[0]
    assert PARSERS.get("spar_lmms_eval")("", mca) == "B" and PARSERS.get("spar_strict")("", mca) is None
    assert PARSERS.get("spar_lmms_eval")("A. the lamp", mca) == "A"  # recorded, scored wrong
    assert process_na("about 2.5 m, maybe 3", "depth_prediction_oc") == 2.5
    assert process_na("from 2 to 3.5", "depth_prediction_oc_mv") == 3.5  # *_mv: the last number
    assert process_na("no idea", "depth_prediction_oc_mv") == -1.0 and process_na("no", "depth_prediction_oc") is None
    assert process_na("-4", "depth_prediction_oo") == 4.0  # unsigned, as the harness's regex


def test_spar_mra_and_vci_against_hand_values_and_a_naive_loop():
    from gaspprobe.benchmarking.formats.sparbench import mra_abs, spar_number_or_vci, vci

    rng = random.Random(3)
    for _ in range(200):
        p, t = rng.uniform(0, 10), rng.choice([0.0, rng.uniform(0.1, 10)])
        d = abs(p - t) if t == 0 else abs(p - t) / t
        naive = sum(d <= 1 - (0.5 + 0.05 * k) + 1e-12 for k in range(10)) / 10  # 0.50, 0.55, ..., 0.95
        assert mra_abs(p, t) == pytest.approx(naive)
    assert vci("move_right:0.5,rotate_left:30", "move_right:0.5,rotate_left:30") == pytest.approx(1.0)
    # axes (gt, pred): right-left (0.5, 1.0) -> |0.5-1|/1 = 0.5 -> 0.1; rotate (-30, 0) -> 30 -> 0; others 1
    assert vci("move_right:1.0", "move_right:0.5,rotate_left:30") == pytest.approx((0.1 + 1 + 1 + 0 + 1) / 5)
    assert vci("turn a bit", "move_right:0.5") == 0.0
    assert spar_number_or_vci(2.4, "2.4") == 1.0 and spar_number_or_vci(None, "2.4") == 0.0


def test_spar_macro_is_the_mean_of_task_means():
    import pandas as pd

    df = pd.DataFrame({"question_type": ["depth_prediction_oc", "depth_prediction_oc", "position_matching",
                                         "obj_spatial_relation_oo"],
                       "task": ["a"] * 4, "score": [1.0, 0.0, 1.0, 0.0]})
    out = AGGREGATIONS.get("spar_macro")(df)
    assert out["overall"] == pytest.approx(100 * (0.5 + 1.0 + 0.0) / 3)
    assert out["extra"]["levels"] == {"low": 50.0, "middle": 100.0, "high": 0.0}


def test_site_video_sample_is_one_decodable_video_with_the_video_prompt():
    import numpy as np

    from gaspprobe.benchmarking.vsibench import read_video_frames

    _, s = _samples("sitebench_video")
    assert s[0].visual == {"video": str(FIX / "sitebench_video" / "videos" / "clip_0.mp4")}
    assert s[1].prompt.startswith("Select the best answer to the following multiple-choice question based on the "
                                  "video.") and s[1].prompt.endswith("B: backward\nGive me the answer letter "
                                                                     "directly. The best answer is:")
    frames, idx, n = read_video_frames(s[1].visual["video"], 4)
    assert n == 12 and idx.tolist() == np.linspace(0, 11, 4, dtype=int).tolist() and frames.shape[0] == 4
    assert load_card("sitebench_video").frames == 32
