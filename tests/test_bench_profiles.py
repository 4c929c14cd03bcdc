"""Harness profiles: frame samplers against hand-computed indices, each profile's prompt, frames,
parser and model inputs, and the refusals (unknown profile, profile not defined for a family/card)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gaspprobe import io
from gaspprobe.benchmarking import profiles
from gaspprobe.benchmarking.card import load_card
from gaspprobe.benchmarking.runner import run
from gaspprobe.errors import ConfigError, DataError

FIX = Path(__file__).parent / "fixtures" / "bench"
VSI, AA = FIX / "vsi", FIX / "allangles"


class Recorder:
    """A generate-only model double that keeps every (frames, prompt) it is given."""

    name = "recorder"

    def __init__(self):
        self.seen = []

    def generate(self, batch, max_new_tokens=16):
        self.seen += list(batch)
        return ["A"] * len(batch)


# --------------------------------------------------------------------------- samplers
def test_linspace_and_uniform_tail_by_hand():
    assert profiles.sample_indices(10, 4, "linspace").tolist() == [0, 3, 6, 9]
    assert profiles.sample_indices(10, 4, "uniform_tail").tolist() == [0, 3, 6, 9]  # last already there
    assert profiles.sample_indices(3, 5, "linspace").tolist() == [0, 0, 1, 1, 2]


def test_qwen_fps2_matches_qwen_vl_utils_then_lmms_eval_subsampling():
    # 40 frames at 10 fps = 4 s -> qwen-vl-utils decodes 4 s * 2 fps = 8 frames at
    # round(linspace(0, 39, 8)) = [0, 6, 11, 17, 22, 28, 33, 39]; lmms-eval 0.7.3 then takes
    # np.unique(np.linspace(0, 7, 32, dtype=int)) of those: all 8, the last one already in
    dec = [0, 6, 11, 17, 22, 28, 33, 39]
    assert profiles.qwen_fps_frames(40, 10.0).tolist() == dec
    assert profiles.sample_indices(40, 32, "qwen_fps2", 10.0).tolist() == dec
    # k < decoded frames: floor(i * 7 / 2) for i in 0..2 = [0, 3, 7] of the decoded ones
    assert profiles.sample_indices(40, 3, "qwen_fps2", 10.0).tolist() == [0, 17, 39]
    # a long video is capped by k, not by the 2 fps count
    long = profiles.sample_indices(3000, 32, "qwen_fps2", 30.0)
    assert len(long) == 32 and long[0] == 0 and long[-1] == 2999
    # at least 4 frames are decoded (even count), never more than the video has
    assert profiles.qwen_fps_frames(30, 30.0).tolist() == [0, 10, 19, 29]
    assert profiles.qwen_fps_frames(3, 30.0).tolist() == [0, 2]


def test_jpeg_roundtrip_is_what_a_saved_frame_reads_back_as(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    f = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    Image.fromarray(f).save(tmp_path / "frame.jpg")
    ref = np.asarray(Image.open(tmp_path / "frame.jpg").convert("RGB"))
    got = profiles.jpeg_roundtrip([f])[0]
    assert np.array_equal(got, ref) and not np.array_equal(got, f)


# --------------------------------------------------------------------------- profiles on the runner
def test_vlmevalkit_profile_prompt_frames_parser(tmp_path):
    rec = Recorder()
    r = run(rec, "vsibench", VSI, tmp_path / "r", frames=3, profile="vlmevalkit")
    s = r.summary
    assert s["profile"] == "vlmevalkit" and s["parser"] == "vlmevalkit_then_first_token"
    assert s["frame_sampler"] == "uniform_tail"
    na = [p for _, p in rec.seen if "How many" in p][0]
    assert na.endswith("\nAnswer briefly and directly in one float number.")
    assert na.startswith("These are frames of a video.\n")
    recs = io.read_jsonl(tmp_path / "r" / "predictions.jsonl")
    assert all(len(x["frame_indices"]) == 3 for x in recs)
    # the fixture's frame i is flat grey 20*i: JPEG keeps a flat frame's level (within 1)
    frames, _ = rec.seen[0]
    assert abs(int(frames[-1][0, 0, 0]) - 20 * recs[0]["frame_indices"][-1]) <= 1
    assert io.read_manifest(tmp_path / "r")["config"]["profile"] == "vlmevalkit"
    # one save/read of the dataset's JPEG frames (Qwen2VLChat hands qwen-vl-utils the file: no second encode)
    assert profiles.get("vlmevalkit").jpeg_passes("internvl") == 1 and profiles.get("vlmevalkit").jpeg_passes(None) == 1


def test_default_profile_keeps_the_historical_config(tmp_path):
    r = run(Recorder(), "allangles", AA, tmp_path / "r")
    cfg = io.read_manifest(tmp_path / "r")["config"]
    assert r.summary["profile"] == "gaspprobe" and "profile" not in cfg and "scorer" not in cfg


def test_unknown_profile_and_profile_not_defined_for_a_card_exit_2(tmp_path, capsys):
    from gaspprobe.cli import main

    with pytest.raises(ConfigError, match="unknown profile 'lmms'"):
        run(Recorder(), "vsibench", VSI, tmp_path / "a", profile="lmms")
    with pytest.raises(ConfigError, match="not defined for allangles"):
        run(Recorder(), "allangles", AA, tmp_path / "b", profile="lmms-eval")
    with pytest.raises(SystemExit) as e:
        main(["bench", "run", "--model", "oracle:answers", "--benchmark", "allangles", "--data", str(AA),
              "--out", str(tmp_path / "c"), "--profile", "lmms-eval", "--no-progress"])
    assert e.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_qwen_nframes_sampler_is_the_chat_class_rule():
    """lmms-eval 0.7.3 chat/qwen2_5_vl.py: nframes = max(2, even(min(32, n))); qwen-vl-utils then
    decodes torch.linspace(0, n-1, nframes).round() (hand-computed cases)."""
    assert profiles.sample_indices(100, 32, "qwen_nframes").tolist() == [
        round(i * 99 / 31 + 1e-9) for i in range(32)]
    assert profiles.sample_indices(7, 32, "qwen_nframes").tolist() == [0, 1, 2, 4, 5, 6]  # 6 frames of 7
    assert profiles.sample_indices(2, 32, "qwen_nframes").tolist() == [0, 1]
    with pytest.raises(DataError, match="fewer than the 2"):
        profiles.sample_indices(1, 32, "qwen_nframes")
    assert profiles.qwen_decoded(100, 32, "qwen_nframes", 10.0) == 32
    assert profiles.qwen_decoded(100, 32, "qwen_fps2", 10.0) == 20  # 10 s at 2 fps


def test_lmms_eval_refuses_families_it_has_no_class_for(tmp_path):
    for fam, why in (("llava_next_video", "no Hugging Face class"), ("smolvlm", "no class for SmolVLM"),
                     ("glm4v", "cannot take a video"), ("llava", "no video path")):
        for name in ("lmms-eval", "lmms-eval-simple"):
            with pytest.raises(ConfigError, match=why):
                profiles.get(name).check(fam, "vsibench")
    with pytest.raises(ConfigError, match="images=\\[\\] beside the video"):
        profiles.get("lmms-eval").check("llava_onevision", "vsibench")
    for fam in ("llava_onevision", "internvl", "gemma3"):
        with pytest.raises(ConfigError, match="not reproduced"):
            profiles.get("lmms-eval-simple").check(fam, "vsibench")
    for fam in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "internvl", "gemma3"):
        profiles.get("lmms-eval").check(fam, "vsibench")
    assert profiles.sample_indices(64, 32, "segment_centres").tolist() == [1 + 2 * i for i in range(32)]
    assert profiles.sample_indices(20, 32, "linspace_capped").tolist() == list(range(20))
    p = profiles.get("lmms-eval")
    assert p.stop_for("qwen2_vl") == ("\n\n",) and p.strip_for("qwen2_vl") is True
    assert p.stop_for("qwen2_5_vl") == () and p.strip_for("qwen2_5_vl") is False
    assert p.system_prompt("qwen2_5_vl") is None and p.system_prompt("qwen2_vl") == "You are a helpful assistant."
    assert p.pixels["qwen2_vl"] == (3136, 602112) and p.pixels["qwen2_5_vl"] == (200704, 1605632)
    with pytest.raises(ConfigError, match="not reproduced"):  # the simple Qwen3-VL class differs from the chat one
        profiles.get("lmms-eval-simple").check("qwen3_vl", "vsibench")
    profiles.get("lmms-eval").check("qwen3_vl", "vsibench")
    # the chat Qwen3-VL class asks qwen-vl-utils for exactly 32 frames, however short the video
    assert len(profiles.sample_indices(40, 32, "qwen_nframes_exact")) == 32
    with pytest.raises(DataError, match="20 frames, fewer than the 32"):
        profiles.sample_indices(20, 32, "qwen_nframes_exact")


def test_profile_not_defined_for_a_family_is_a_config_error(tmp_path):
    class Cfg:
        model_type = "paligemma"

    class Other(Recorder):
        processor = object()

        class model:  # noqa: N801 - looks like an adapter of an unsupported family
            config = Cfg()

    with pytest.raises(ConfigError, match="not defined for model family 'paligemma'"):
        run(Other(), "vsibench", VSI, tmp_path / "r", frames=2, profile="lmms-eval")


# --------------------------------------------------------------------------- model inputs
@pytest.fixture(scope="module")
def qwen():
    from gaspprobe.models.testing import tiny_adapter

    return tiny_adapter("qwen2_5_vl")


def test_lmms_eval_inputs_system_prompt_and_pixel_budget(qwen):
    frames = np.full((2, 224, 224, 3), 90, np.uint8)
    inp = profiles.build_inputs(qwen, [(frames, "Q?", False)], profiles.get("lmms-eval-simple"))
    text = qwen.processor.tokenizer.decode(inp["input_ids"][0])
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    # the chat class (lmms-eval's default for qwen2_5_vl) adds no system turn of its own: the checkpoint's
    # template decides (the real one adds "You are a helpful assistant."; the tiny one adds none)
    chat = profiles.build_inputs(qwen, [(frames, "Q?", False)], profiles.get("lmms-eval"))
    assert qwen.processor.tokenizer.decode(chat["input_ids"][0]).startswith("<|im_start|>user\n")
    # min_pixels 256*28*28 = 200704 upscales a 224x224 frame to 448x448: 32x32 patches of 14 px
    assert inp["image_grid_thw"].tolist() == [[1, 32, 32], [1, 32, 32]]
    vk = profiles.build_inputs(qwen, [(frames, "Q?", False)], profiles.get("vlmevalkit"))
    # vlmeval/config.py's min_pixels 1280*28*28 = 1003520: qwen-vl-utils lifts 224x224 to 1008x1008, then
    # the checkpoint's own processor (VLMEvalKit passes it no budget) does what it does with that image
    from PIL import Image

    big = profiles.qwen_image_resize(Image.fromarray(frames[0]), 1280 * 28 * 28, 16384 * 28 * 28)
    assert big.size == (1008, 1008)
    own = qwen.processor.image_processor(images=[big, big], return_tensors="pt")["image_grid_thw"].tolist()
    assert vk["image_grid_thw"].tolist() == own
    assert "system" not in qwen.processor.tokenizer.decode(vk["input_ids"][0])
    base = profiles.build_inputs(qwen, [(frames, "Q?", False)], profiles.get("gaspprobe"))
    assert base["image_grid_thw"].tolist() == qwen.prepare([(frames, "Q?")])["image_grid_thw"].tolist()


def _image_only(ad):
    from gaspprobe.models.processors import Qwen2_5_VLImageOnlyProcessor

    proc = Qwen2_5_VLImageOnlyProcessor(image_processor=ad.processor.image_processor, tokenizer=ad.processor.tokenizer,
                                        chat_template=ad.processor.chat_template)
    return type(ad)(ad.model, proc, model_id="image-only")


def test_video_profile_needs_a_processor_with_a_video_path(qwen, tmp_path):
    with pytest.raises(ConfigError, match="video path"):
        run(_image_only(qwen), "vsibench", VSI, tmp_path / "r", frames=2, limit=1, profile="lmms-eval", blind=False)
    assert not (tmp_path / "r" / "predictions.jsonl").exists() or \
        not io.read_jsonl(tmp_path / "r" / "predictions.jsonl")


def test_video_profile_feeds_the_video_path_where_the_processor_has_one(qwen):
    from gaspprobe.models.video import ensure_torchvision

    if not ensure_torchvision() or getattr(qwen.processor, "video_processor", None) is None:
        pytest.skip("the tiny model's processor has no video processor (needs torchvision)")
    frames = np.full((4, 56, 56, 3), 120, np.uint8)
    with pytest.raises(ConfigError, match="metadata"):  # the chat class's processor gets each video's metadata
        profiles.build_inputs(qwen, [(frames, "How many?", True)], profiles.get("lmms-eval"))
    meta = {"video_fps": 10.0, "frame_indices": [0, 13, 26, 39], "video_frames": 40}
    inp = profiles.build_inputs(qwen, [(frames, "How many?", True, meta)], profiles.get("lmms-eval"))
    # transformers: seconds per grid = temporal patch (2) / sampled fps (4 of 40 frames at 10 fps = 1 fps)
    assert inp["second_per_grid_ts"].tolist() == [2.0]
    simple = profiles.build_inputs(qwen, [(frames, "How many?", True)], profiles.get("lmms-eval-simple"))
    assert simple["second_per_grid_ts"].tolist() == [pytest.approx(2 / 24)]  # no fps passed: 24 assumed
    assert "pixel_values_videos" in inp and "pixel_values" not in inp
    t, gh, gw = inp["video_grid_thw"][0].tolist()
    assert t == 2  # four frames, two per temporal patch
    n_video = int((inp["input_ids"][0] == qwen.video_token_id).sum())
    assert n_video == t * gh * gw // 4 and int((inp["input_ids"][0] == qwen.image_token_id).sum()) == 0


def test_profile_generation_equals_adapter_generation_when_inputs_agree(qwen, tmp_path):
    """A profile without system prompt or pixel budget builds exactly the adapter's own inputs
    (one processor call for the batch), so greedy answers agree."""
    frames = np.full((2, 56, 56, 3), 120, np.uint8)
    plain = profiles.Profile(name="plain", description="no overrides")
    a = profiles.build_inputs(qwen, [(frames, "Which?", False)], plain)
    b = qwen.prepare([(frames, "Which?")])
    assert a["input_ids"].tolist() == b["input_ids"].tolist()
    assert np.allclose(a["pixel_values"].numpy(), b["pixel_values"].numpy())
    ga = profiles.generate_inputs(qwen, a, max_new_tokens=4)
    assert ga == qwen.generate([(frames, "Which?")], max_new_tokens=4)


@pytest.mark.parametrize("card", ["vsibench", "allangles"])
@pytest.mark.parametrize("name", profiles.PROFILES.names())
def test_every_profile_runs_where_it_is_defined_and_refuses_elsewhere(tmp_path, name, card):
    """Generated from the registry: each profile on each fixture card."""
    prof = profiles.get(name)
    data, kw = (VSI, {"frames": 2}) if card == "vsibench" else (AA, {})
    if prof.formats and card not in prof.formats:
        with pytest.raises(ConfigError, match=f"not defined for {card}"):
            run(Recorder(), card, data, tmp_path / "r", profile=name, **kw)
        return
    r = run(Recorder(), card, data, tmp_path / "r", profile=name, **kw)
    assert r.summary["profile"] == name and r.summary["n"] == (12 if card == "vsibench" else 11)
    assert r.summary["parser"] == prof.parser.get(card, load_card(card).parser)


def test_oracle_scores_100_under_every_profile_parser(tmp_path):
    for name in profiles.PROFILES.names():
        prof = profiles.get(name)
        for card, data, kw in (("vsibench", VSI, {"frames": 2}), ("allangles", AA, {})):
            if prof.formats and card not in prof.formats:
                continue
            r = run("oracle:answers", card, data, tmp_path / f"{name}-{card}", profile=name, **kw)
            assert r.overall == pytest.approx(100.0), (name, card)
