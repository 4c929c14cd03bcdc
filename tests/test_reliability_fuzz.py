"""Reliability, part 3: fuzzing with hypothesis.

- Every registered answer parser (``gaspprobe.benchmarking.registry.PARSERS``), on arbitrary model
  output, never raises and returns an option letter of the sample (multiple choice), a finite float
  (numerical), or ``None`` ("no answer"); scoring that answer gives a score in [0, 1].
- The benchmark-card loader and the recipe / training / loop config loaders, on arbitrary dicts and
  arbitrary TOML/YAML text, either build a config or raise a :class:`GaspError` with a one-line
  message; never another exception. Non-finite floats are refused by name.

Seeded (``derandomize=True``) so CI sees the same examples every run; example counts are kept small
enough for the 2-core box.
"""

from __future__ import annotations

import math
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gaspprobe.errors import GaspError

FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SLOWER = settings(max_examples=60, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------- parsers
def _samples():
    from gaspprobe.benchmarking.card import Sample

    mca = Sample(id="1", question_type="object_rel_distance", kind="mca", prompt="", target="B",
                 task="object_rel_distance", options={"A": "chair", "B": "table", "C": "sofa", "D": "lamp"})
    na = Sample(id="2", question_type="object_counting", kind="na", prompt="", target="3", task="object_counting")
    aa = Sample(id="3", question_type="counting", kind="mca", prompt="", target="A", task="counting",
                options={"A": "2", "B": "3", "C": "4"})
    return [mca, na, aa]


NUMBER_WORDS = ["zero", "one", "two", "three", "ten", "twenty", "ninety", "hundred", "thousand", "and", "-"]
# model-output-like text: letters, digits, number words, punctuation, unicode, very long numbers
model_text = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=string.printable, max_size=120),
    st.lists(st.sampled_from(["A", "B", "C", "D", "Z", "a", "(A)", "A.", "B)", "The", "answer", "is", "chair",
                              "table", "3", "2.5", "1,200", "-4", "1e309", "nan", "inf", "three", "meters", ".",
                              "\n", " ", "", "\u00a0", "٣", "①", "Ⅻ"]), max_size=12).map(" ".join),
    st.lists(st.sampled_from(NUMBER_WORDS), min_size=1, max_size=400).map(" ".join),
    st.from_regex(r"[0-9]{1,400}(\.[0-9]{0,30})?([eE][-+]?[0-9]{1,5})?", fullmatch=True),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def _check_parsed(parsed, sample) -> None:
    if parsed is None:
        return
    if sample.kind == "mca":
        assert isinstance(parsed, str) and parsed in sample.options, f"{parsed!r} is not an option"
    else:
        assert isinstance(parsed, float) and math.isfinite(parsed), f"{parsed!r} is not a finite number"


def _parser_names() -> list[str]:
    from gaspprobe.benchmarking.registry import PARSERS

    return sorted(PARSERS.names()) if hasattr(PARSERS, "names") else sorted(PARSERS)


def test_every_parser_is_fuzzed():
    names = _parser_names()
    assert {"vsibench_first_token", "lmms_eval_lenient", "vlmevalkit_can_infer"} <= set(names)


@pytest.mark.parametrize("name", _parser_names())
@FAST
@given(raw=model_text)
@example(raw="")
@example(raw=" A")
@example(raw="1e309")
@example(raw="nan")
@example(raw="-0")
def test_parser_never_raises(name, raw):
    from gaspprobe.benchmarking.registry import PARSERS

    parse = PARSERS.get(name)
    for s in _samples():
        if name == "vlmevalkit_can_infer" and s.kind == "na":
            continue  # All-Angles is multiple choice only
        _check_parsed(parse(raw, s), s)


def test_lenient_parser_huge_number_words():
    """Regression (fixed in parse._words_value): a number-word run beyond float range is no answer."""
    from gaspprobe.benchmarking.parse import lmms_eval_lenient

    s = _samples()[1]
    _check_parsed(lmms_eval_lenient("one" + " hundred" * 160, s), s)


@pytest.mark.parametrize("card_name", ["vsibench", "allangles", "synthetic_vsi", "synthetic_allangles"])
@SLOWER
@given(raw=model_text)
def test_score_sample_in_unit_interval(card_name, raw):
    """Parse + the card's metric: a score in [0, 1] (the MRA of a huge number is 0, not an error)."""
    from gaspprobe.benchmarking.registry import PARSERS
    from gaspprobe.benchmarking.runner import score_sample

    card = _card_cache(card_name)
    parse = PARSERS.get(card.parser)
    for s in _samples():
        if s.kind not in card.metrics:
            continue
        parsed, score = score_sample(s, raw, parse, card)
        _check_parsed(parsed, s)
        assert 0.0 <= score <= 1.0 and math.isfinite(score)


_CARDS: dict = {}


def _card_cache(name):
    from gaspprobe.benchmarking.card import load_card

    if name not in _CARDS:
        _CARDS[name] = load_card(name)
    return _CARDS[name]


# --------------------------------------------------------------------------- config loaders
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                        st.text(max_size=12))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                               st.dictionaries(st.text(max_size=8), inner,
                                                                               max_size=4)),
                          max_leaves=12)


def _config_dicts(cls, extra_keys=("foo", "stepz", "")):
    import dataclasses

    names = [f.name for f in dataclasses.fields(cls) if f.init]
    keys = st.one_of(st.sampled_from(names), st.sampled_from(list(extra_keys)), st.text(max_size=10))
    return st.dictionaries(keys, json_value, max_size=6)


def _classes():
    from gaspprobe.benchmarking.card import BenchmarkCard
    from gaspprobe.pipeline import LoopConfig
    from gaspprobe.probing.recipe import Recipe
    from gaspprobe.training.config import TrainConfig

    return {"card": BenchmarkCard, "recipe": Recipe, "train": TrainConfig, "loop": LoopConfig}


def _build(kind, data):
    from gaspprobe.config import from_dict

    cls = _classes()[kind]
    if kind == "card":  # a card needs its three required keys to get to the rest
        data = {"name": "x", "version": "1", "format": "vsibench", **data}
    return from_dict(cls, data, where="fuzz.toml")


@pytest.mark.parametrize("kind", ["card", "recipe", "train", "loop"])
@FAST
@given(data=st.data())
def test_config_from_dict_only_raises_gasp_errors(kind, data):
    d = data.draw(_config_dicts(_classes()[kind]))
    try:
        _build(kind, d)
    except GaspError as e:
        assert "\n" not in str(e) and str(e)


@pytest.mark.parametrize("kind", ["recipe", "train", "loop"])
@FAST
@given(data=st.data())
def test_config_from_dict_names_the_bad_key(kind, data):
    """A single wrong-typed or unknown key: the message names that key."""
    import dataclasses

    from gaspprobe.config import from_dict

    cls = _classes()[kind]
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    key = data.draw(st.one_of(st.sampled_from(names), st.just("no_such_key")))
    val = data.draw(st.one_of(st.text(min_size=1, max_size=5).filter(lambda t: t not in ("hidden", "attention")),
                              st.dictionaries(st.just("k"), st.integers(), min_size=1)))
    try:
        from_dict(cls, {key: val}, where="f.toml")
    except GaspError as e:
        assert key in str(e) and "f.toml" in str(e), str(e)
    # (a str is a valid value for str-typed keys: then nothing is raised, which is right)


@pytest.mark.parametrize("kind,key", [("train", "lr"), ("train", "temperature"), ("recipe", "depth_tol"),
                                      ("recipe", "conf_temperature")])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_floats_are_refused_by_name(kind, key, bad):
    with pytest.raises(GaspError, match=key):
        _build(kind, {key: bad})


def test_non_string_keys_are_refused():
    """YAML allows `1: x`: a non-string key is an unknown key, not a TypeError."""
    with pytest.raises(GaspError, match="unknown key"):
        _build("train", {1: 2})


toml_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.tuples(st.sampled_from(["steps", "lr", "gaps", "modes", "frames", "name", "x y", "[t]", "a.b"]),
                       st.sampled_from(["1", "-3", "2.5", "nan", "inf", '"s"', "[1, 2]", "[", "{a = 1}", "true",
                                        "1979-05-27", "", "'''"])), max_size=6)
    .map(lambda kv: "\n".join(f"{k} = {v}" for k, v in kv)),
)
yaml_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.tuples(st.sampled_from(["steps", "lr", "gaps", "1", "- a", "name", "frames", "? x", "&a", "*a"]),
                       st.sampled_from(["1", "2.5", ".nan", "[1, 2]", "{a: 1}", "[", "!!python/object:os.system",
                                        "yes", "~", "'s'", "\"\\x\"", "|"])), max_size=6)
    .map(lambda kv: "\n".join(f"{k}: {v}" for k, v in kv)),
)


@pytest.mark.parametrize("kind", ["recipe", "train", "loop"])
@SLOWER
@given(text=toml_text)
def test_toml_loaders_only_raise_gasp_errors(kind, text, tmp_path_factory):
    from gaspprobe.config import load

    p = tmp_path_factory.mktemp("toml") / "cfg.toml"
    p.write_text(text, encoding="utf-8")
    try:
        if kind == "recipe":
            from gaspprobe.probing.recipe import load_recipe

            load_recipe(p)
        else:
            load(_classes()[kind], p)
    except GaspError as e:
        assert "\n" not in str(e) and "cfg.toml" in str(e), str(e)


@SLOWER
@given(text=yaml_text)
def test_card_yaml_loader_only_raises_gasp_errors(text, tmp_path_factory):
    from gaspprobe.benchmarking.card import load_card

    p = tmp_path_factory.mktemp("card") / "card.yaml"
    p.write_text(text, encoding="utf-8")
    try:
        load_card(p)
    except GaspError as e:
        assert "\n" not in str(e) and "card.yaml" in str(e), str(e)


@FAST
@given(data=st.data())
def test_card_loader_on_real_card_with_one_field_fuzzed(data, tmp_path_factory):
    """The real synthetic_vsi card with one top-level value replaced by an arbitrary one."""
    import yaml

    from gaspprobe.benchmarking.card import cards_dir, load_card

    card = yaml.safe_load((cards_dir() / "synthetic_vsi.yaml").read_text())
    key = data.draw(st.sampled_from(sorted(card)))
    card[key] = data.draw(json_value)
    p = tmp_path_factory.mktemp("card") / "card.yaml"
    p.write_text(yaml.safe_dump(card), encoding="utf-8")
    try:
        load_card(p)
    except GaspError as e:
        assert "\n" not in str(e) and "card.yaml" in str(e), str(e)


# --------------------------------------------------------------------------- predictions files (bench score)
prediction_record = st.one_of(
    st.fixed_dictionaries({"id": json_scalar, "raw": json_value}, optional={"failed": json_scalar}),
    st.fixed_dictionaries({"doc_id": json_value}, optional={"doc": json_value, "resps": json_value,
                                                            "filtered_resps": json_value}),
    st.dictionaries(st.text(max_size=8), json_value, max_size=4),
    json_value,
)


@SLOWER
@given(records=st.lists(prediction_record, max_size=5))
@example(records=[{"doc_id": "", "resps": ["A"]}])
def test_read_predictions_only_raises_gasp_errors(records, tmp_path_factory):
    """`bench score` reads our JSONL or lmms-eval sample logs: anything else is a one-line error."""
    import json as _json

    from gaspprobe.benchmarking.runner import read_predictions

    p = tmp_path_factory.mktemp("pred") / "samples.jsonl"
    p.write_text("".join(_json.dumps(r) + "\n" for r in records), encoding="utf-8")
    try:
        out = read_predictions(p, _samples())
    except GaspError as e:
        assert "\n" not in str(e) and "samples.jsonl" in str(e), str(e)
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in out.items())


# --------------------------------------------------------------------------- benchmark question files
AA_KEYS = ["index", "folder", "category", "pair_idx", "sourced_dataset", "image_path", "question", "A", "B", "C",
           "answer"]
aa_value = st.one_of(json_value, st.sampled_from(["A", "B", "C", "counting", "camera_pose_estimation", "x.png"]),
                     st.lists(st.sampled_from(["v1.png", "v2.png", ""]), max_size=3))


@SLOWER
@given(records=st.lists(st.dictionaries(st.sampled_from(AA_KEYS + ["extra"]), aa_value, max_size=12), max_size=3)
       | json_value)
def test_allangles_loader_only_raises_gasp_errors(records, tmp_path_factory):
    """All-Angles data.json with arbitrary records: samples, or a one-line error naming the file."""
    import json as _json

    from gaspprobe.benchmarking.allangles import load_samples

    p = tmp_path_factory.mktemp("aa") / "data.json"
    p.write_text(_json.dumps(records), encoding="utf-8")
    try:
        load_samples(_card_cache("synthetic_allangles"), p)
    except GaspError as e:
        assert "\n" not in str(e) and "data.json" in str(e), str(e)


def test_allangles_category_list_is_a_data_error(tmp_path):
    """Regression (fixed in allangles.load_samples): a list/object category is an unknown category:
    the file-level check refuses it, or (a bad row is data) the sample is recorded as failed naming it."""
    import json as _json

    from gaspprobe.benchmarking.allangles import load_samples

    rec = {"index": 0, "folder": "s", "category": ["counting"], "pair_idx": None, "sourced_dataset": "x",
           "image_path": ["v1.png"], "question": "q", "A": "1", "B": "2", "C": "3", "answer": "A"}
    p = tmp_path / "data.json"
    p.write_text(_json.dumps([rec]))
    try:
        samples = load_samples(_card_cache("synthetic_allangles"), p)
    except GaspError as e:
        assert "category" in str(e)
    else:
        assert len(samples) == 1 and samples[0].error and "category" in samples[0].error


VSI_COLUMNS = ["id", "dataset", "scene_name", "question_type", "question", "ground_truth", "options"]
vsi_value = st.one_of(st.none(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=10),
                      st.sampled_from(["object_counting", "object_rel_distance", "3", "A", "0"]),
                      st.lists(st.sampled_from(["A. chair", "B. table", "C", ""]), max_size=4))


@SLOWER
@given(rows=st.lists(st.fixed_dictionaries({c: vsi_value for c in VSI_COLUMNS}), min_size=1, max_size=3))
def test_vsibench_loader_only_raises_gasp_errors(rows, tmp_path_factory):
    """VSI-Bench parquet rows with arbitrary values (mixed types become strings, as parquet needs one
    type per column): samples, or a one-line error naming the file."""
    import pandas as pd

    from gaspprobe.benchmarking.vsibench import load_samples

    df = pd.DataFrame(rows)
    for c in VSI_COLUMNS:
        if c != "options":
            vals = df[c].tolist()
            kinds = {type(v) for v in vals if v is not None}
            if len(kinds) > 1:
                df[c] = [None if v is None else str(v) for v in vals]
    df["options"] = [v if isinstance(v, list) else None for v in df["options"]]
    p = tmp_path_factory.mktemp("vsi") / "test-00000-of-00001.parquet"
    try:
        df.to_parquet(p)
    except Exception:  # noqa: BLE001 - a frame pyarrow cannot store is not an input anyone can have
        return
    try:
        load_samples(_card_cache("synthetic_vsi"), p, video_root=p.parent)
    except GaspError as e:
        assert "\n" not in str(e) and "test-00000-of-00001.parquet" in str(e), str(e)


# --------------------------------------------------------------------------- scene folder text files
@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    from gaspprobe.scenes import generate_scene, save_scene

    d = tmp_path_factory.mktemp("scene") / "scene0000_00"
    save_scene(generate_scene(seed=1, frames=2, size=32, name=d.name), d)
    return d


matrix_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.lists(st.sampled_from(["1", "0", "-0.5", "nan", "inf", "-inf", "1e999", "x", "1,0", "0x1", "١"]),
                      min_size=0, max_size=5).map(" ".join), max_size=5).map("\n".join),
)


@SLOWER
@given(pose=matrix_text, intrinsic=matrix_text, objects=json_value)
def test_scene_reader_only_raises_data_errors(pose, intrinsic, objects, scene_dir, tmp_path_factory):
    """Arbitrary pose / intrinsic text and objects.json: a Scene with finite poses, or a one-line
    DataError naming the file (a SceneWarning for a skipped frame is fine)."""
    import json as _json
    import shutil
    import warnings

    import torch

    from gaspprobe.scenes import load_scene

    d = tmp_path_factory.mktemp("fz") / scene_dir.name
    shutil.copytree(scene_dir, d)
    (d / "pose" / "1.txt").write_text(pose, encoding="utf-8")
    (d / "intrinsic" / "intrinsic_color.txt").write_text(intrinsic, encoding="utf-8")
    (d / "objects.json").write_text(_json.dumps(objects), encoding="utf-8")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = load_scene(d)
    except GaspError as e:
        assert "\n" not in str(e) and str(d) in str(e), str(e)
        return
    assert bool(torch.isfinite(s.cam_to_world).all()) and bool(torch.isfinite(s.K).all())
    assert float(s.K[0, 0, 0]) > 0 and float(s.K[0, 1, 1]) > 0


obj_value = st.one_of(json_value, st.floats(allow_nan=True, allow_infinity=True),
                      st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4))
objects_json = st.one_of(
    json_value,
    st.fixed_dictionaries({"objects": st.lists(st.dictionaries(
        st.sampled_from(["cls", "class", "color", "center", "size", "yaw", "id", "name"]), obj_value, max_size=7),
        max_size=3)}, optional={"room": json_value}),
)


@SLOWER
@given(objects=objects_json)
@example(objects={"objects": [{"class": "chair", "center": [0, 0, 0], "size": [1, 1, 1], "id": 1.5}]})
def test_scene_reader_objects_json(objects, scene_dir, tmp_path_factory):
    """objects.json with arbitrary content (everything else valid): a Scene, or one DataError line."""
    import json as _json
    import shutil

    from gaspprobe.scenes import load_scene

    d = tmp_path_factory.mktemp("fo") / scene_dir.name
    shutil.copytree(scene_dir, d)
    (d / "objects.json").write_text(_json.dumps(objects), encoding="utf-8")
    try:
        load_scene(d)
    except GaspError as e:
        assert "\n" not in str(e) and "objects.json" in str(e), str(e)


def test_scene_reader_object_id_infinity(scene_dir, tmp_path):
    """Regression (fixed in scannet.load_scene): "id": Infinity is a DataError naming objects.json."""
    import shutil

    from gaspprobe.scenes import load_scene

    d = tmp_path / scene_dir.name
    shutil.copytree(scene_dir, d)
    (d / "objects.json").write_text('{"objects": [{"class": "chair", "center": [0, 0, 0], "size": [1, 1, 1], '
                                    '"id": Infinity}]}')
    with pytest.raises(GaspError, match="objects.json"):
        load_scene(d)


# --------------------------------------------------------------------------- gaspprobe.io readers
@SLOWER
@given(data=st.one_of(st.binary(max_size=200),
                      st.lists(st.one_of(json_value.map(lambda v: __import__("json").dumps(v)), st.text(max_size=20)),
                               max_size=5).map(lambda ls: "\n".join(ls).encode("utf-8", "replace"))))
@example(data=b'{"a": 1}\n\xff\xfe{"b": 2}\n')
@example(data=b'{"a": "\xc3')  # a partial multi-byte character in a partial last line
def test_io_readers_only_raise_data_errors(data, tmp_path_factory):
    """read_jsonl / read_json / read_manifest / is_complete / read_table on arbitrary bytes."""
    from gaspprobe import io

    d = tmp_path_factory.mktemp("io")
    for name in ("x.jsonl", "x.json", "manifest.json", "x.parquet"):
        (d / name).write_bytes(data)
    for fn, arg in ((io.read_jsonl, d / "x.jsonl"), (io.read_json, d / "x.json"), (io.read_manifest, d),
                    (io.read_table, d / "x.parquet")):
        try:
            out = fn(arg)
        except GaspError as e:
            assert "\n" not in str(e), str(e)
            continue
        if fn is io.read_jsonl:
            assert isinstance(out, list) and all(isinstance(r, (dict, list, str, int, float, bool, type(None)))
                                                 for r in out)
    assert io.is_complete(d) in (True, False)
