"""Every registered special answerer on every fixture card (generated from the registry), and the
two model-based extras: the blind baseline and the non-official likelihood scorer on a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from gaspprobe import io
from gaspprobe.benchmarking.answerers import ANSWERERS
from gaspprobe.benchmarking.card import load_card
from gaspprobe.benchmarking.runner import load_samples, run

FIX = Path(__file__).parent / "fixtures" / "bench"
CARDS = {"vsibench": (FIX / "vsi", {"frames": 2}), "allangles": (FIX / "allangles", {})}


@pytest.mark.parametrize("card", sorted(CARDS))
@pytest.mark.parametrize("name", ANSWERERS.names())
def test_every_answerer_meets_its_expectation(tmp_path, name, card):
    data, kw = CARDS[card]
    r = run(name, card, data, tmp_path / "r", **kw)
    assert ANSWERERS.get(name).expect(r.summary), (name, card, r.summary["overall"])
    assert r.summary["baselines"]["blind"] is None  # answerers have no blind pass
    assert "blind" not in io.read_manifest(tmp_path / "r")["config"]


def test_chance_answerer_is_the_hand_computed_expectation(tmp_path):
    r = run("baseline:chance", "allangles", FIX / "allangles", tmp_path / "r")
    assert r.overall == pytest.approx(100 / 3)  # every All-Angles question has three options
    v = run("baseline:chance", "vsibench", FIX / "vsi", tmp_path / "v", frames=2)
    samples = {s.id: s for s in load_samples(load_card("vsibench"), FIX / "vsi")}
    for rec in io.read_jsonl(tmp_path / "v" / "predictions.jsonl"):
        s = samples[rec["id"]]
        assert rec["score"] == pytest.approx(1 / len(s.options) if s.kind == "mca" else 0.0)
    assert v.tasks["object_rel_distance"] == pytest.approx(25.0)


# --------------------------------------------------------------------------- tiny real model
@pytest.fixture(scope="module")
def tiny():
    from gaspprobe.models.testing import tiny_adapter, tiny_model_dir

    return tiny_adapter("qwen2_5_vl"), tiny_model_dir("qwen2_5_vl")


def test_blind_baseline_is_the_model_without_images(tmp_path, tiny):
    ad, mdir = tiny
    r = run(ad, "allangles", FIX / "allangles", tmp_path / "r", batch_size=4)
    recs = {x["id"]: x for x in io.read_jsonl(tmp_path / "r" / "predictions.jsonl")}
    assert all("blind_raw" in x for x in recs.values())
    assert r.summary["baselines"]["blind"]["n"] == 11
    assert io.read_manifest(tmp_path / "r")["config"]["blind"] is True
    b = run(f"blind:{mdir}", "allangles", FIX / "allangles", tmp_path / "b", batch_size=1)
    blind = {x["id"]: x for x in io.read_jsonl(tmp_path / "b" / "predictions.jsonl")}
    assert {k: v["raw"] for k, v in blind.items()} == {k: v["blind_raw"] for k, v in recs.items()}
    assert r.summary["baselines"]["blind"]["overall"] == pytest.approx(b.overall)


def test_likelihood_scorer_answers_every_multiple_choice_question(tmp_path, tiny):
    import torch

    from gaspprobe.benchmarking import likelihood

    ad, _ = tiny
    r = run(ad, "allangles", FIX / "allangles", tmp_path / "r", scorer="likelihood", blind=False)
    s = r.summary
    assert s["scorer"] == "likelihood" and s["official"] is False and "non-official" in s["scorer_label"]
    assert s["parse_failures"] == 0 and io.read_manifest(tmp_path / "r")["config"]["scorer"] == "likelihood"
    samples = {x.id: x for x in load_samples(load_card("allangles"), FIX / "allangles")}
    from gaspprobe.benchmarking.allangles import read_images

    for rec in io.read_jsonl(tmp_path / "r" / "predictions.jsonl")[:3]:
        smp = samples[rec["id"]]
        # naive reference: one full forward per option on prompt + letter, log-softmax at the letter
        inputs = ad.prepare([(read_images(smp.visual["images"]), smp.prompt)])
        tok = ad.processor.tokenizer
        ref = []
        for letter in sorted(smp.options):
            ids = tok(letter, add_special_tokens=False)["input_ids"]
            ext = dict(inputs)
            ext["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([ids])], 1)
            ext["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones(1, len(ids), dtype=torch.long)], 1)
            if "mm_token_type_ids" in inputs:  # 0 = text token
                mm = inputs["mm_token_type_ids"]
                ext["mm_token_type_ids"] = torch.cat([mm, torch.zeros(1, len(ids), dtype=mm.dtype)], 1)
            with torch.inference_mode():
                lp = torch.log_softmax(ad.model(**ext).logits[0].float(), -1)
            n = inputs["input_ids"].shape[1]
            ref.append(float(sum(lp[n - 1 + j, t] for j, t in enumerate(ids))))
        assert rec["option_logprobs"] == pytest.approx(ref, abs=1e-4)
        assert rec["raw"] == likelihood.pick(smp.options, ref)


def test_likelihood_needs_a_real_model(tmp_path):
    from gaspprobe.errors import GaspError

    class Fake:
        def generate(self, batch, max_new_tokens=16):
            return ["A"] * len(batch)

    with pytest.raises(GaspError, match="likelihood"):
        run(Fake(), "allangles", FIX / "allangles", tmp_path / "r", scorer="likelihood")


def test_option_logprobs_one_pass_equals_appending_each_option(tiny):
    from gaspprobe.benchmarking import likelihood
    from gaspprobe.benchmarking.allangles import read_images

    ad, _ = tiny
    smp = load_samples(load_card("allangles"), FIX / "allangles")[0]
    inputs = ad.prepare([(read_images(smp.visual["images"]), smp.prompt)])
    tok = ad.processor.tokenizer
    a, b = (tok(x, add_special_tokens=False)["input_ids"] for x in ("A", "B"))
    one = likelihood.option_logprobs(ad.model, inputs, [a, b])
    many = likelihood.option_logprobs(ad.model, inputs, [a, b, a + b])  # a two-token option: appended path
    assert many[:2] == pytest.approx(one, abs=1e-4) and many[2] < many[0]
