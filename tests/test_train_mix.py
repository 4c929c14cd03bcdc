"""The joint mix: LLaVA-Video-178K / LLaVA-OneVision conversation data under the LM loss.

The fixture is laid out as those datasets are (one JSON list of records with ``image`` / ``video``
paths relative to the data folder and ``conversations`` of ``from``/``value`` turns, LLaVA's
``<image>`` / ``<video>`` placeholders), with real PNG files and an MPEG-4 video written by PyAV.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gaspprobe.errors import ConfigError, DataError

RECORDS = [
    {"id": "img", "image": "coco/img0.png",
     "conversations": [{"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": "A red chair."}]},
    {"id": "vid", "video": "academic/clip.mp4",
     "conversations": [{"from": "human", "value": "<video>\nDescribe."}, {"from": "gpt", "value": "A room."},
                       {"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "Blue walls."}]},
    {"id": "txt", "conversations": [{"from": "human", "value": "Hello"}, {"from": "gpt", "value": "Hi there."}]},
]


@pytest.fixture(scope="module")
def mix_dir(tmp_path_factory):
    import av
    from PIL import Image

    from gaspprobe.scenes import generate_scene

    d = tmp_path_factory.mktemp("mix")
    sc = generate_scene(3, frames=4, size=64)
    (d / "coco").mkdir()
    (d / "academic").mkdir()
    Image.fromarray(sc.rgb[0].numpy()).save(d / "coco" / "img0.png")
    with av.open(str(d / "academic" / "clip.mp4"), "w") as c:
        st = c.add_stream("mpeg4", rate=4)
        st.width, st.height, st.pix_fmt = 64, 64, "yuv420p"
        for f in sc.rgb.numpy():
            for p in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    (d / "mix.json").write_text(json.dumps(RECORDS))
    return d, sc


def test_reads_llava_records_and_video_frames(mix_dir):
    from gaspprobe.training.mix import load_media, read_conversations

    d, sc = mix_dir
    convs = read_conversations(d / "mix.json")
    assert [(c.id, c.kind, len(c.turns)) for c in convs] == [("img", "image", 2), ("vid", "video", 4), ("txt", None, 2)]
    assert convs[1].turns[2] == ("user", "Colour?") and convs[0].media == (d / "coco" / "img0.png",)
    assert np.array_equal(np.asarray(load_media(convs[0], 8)[0]), sc.rgb[0].numpy())      # PNG is lossless
    # 4 video frames, 2 asked: frames 0 and 3 (evenly spread); MPEG-4 is lossy, so each decoded
    # frame must be much closer to its source frame than to the other one
    ims = [np.asarray(im).astype(float) for im in load_media(convs[1], 2)]
    src = sc.rgb.numpy().astype(float)
    err = [[np.abs(im - src[k]).mean() for k in (0, 3)] for im in ims]
    assert err[0][0] < err[0][1] and err[1][1] < err[1][0]
    assert len(load_media(convs[1], 10)) == 4 and load_media(convs[2], 8) == []


def test_bad_mix_data_is_one_line_naming_file_and_record(tmp_path, mix_dir):
    from gaspprobe.training.mix import read_conversations

    d, _ = mix_dir
    cases = [([{"id": "x", "conversations": []}], "record 0 \\(id x\\): 'conversations'"),
             ([{"id": "y", "image": "nope.png", "conversations": RECORDS[0]["conversations"]}], "media file not found"),
             ([{"conversations": [{"from": "human", "value": "hi"}]}], "no 'gpt' turn"),
             ([{"image": "a.png", "video": "b.mp4", "conversations": RECORDS[0]["conversations"]}], "both"),
             ([{"conversations": [{"from": "robot", "value": "hi"}]}], "'from'"),
             ({"not": "a list"}, "non-empty list")]
    for i, (recs, msg) in enumerate(cases):
        p = d / f"bad{i}.json"
        p.write_text(json.dumps(recs))
        with pytest.raises(DataError, match=msg) as e:
            read_conversations(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)
    (d / "broken.json").write_text("[{")
    with pytest.raises(DataError, match="not valid JSON"):
        read_conversations(d / "broken.json")
    with pytest.raises(ConfigError, match="lambda_lm"):
        from gaspprobe.training.config import TrainConfig

        TrainConfig(mix_data=[str(d / "mix.json")])


@pytest.mark.parametrize("arch,end", [("qwen2_5_vl", "<|im_end|>\n"), ("idefics3", "<end_of_utterance>\n")])
def test_labels_cover_the_assistant_turns_only(mix_dir, arch, end):
    from gaspprobe.models.testing import tiny_adapter
    from gaspprobe.training.mix import encode, read_conversations

    d, _ = mix_dir
    ad = tiny_adapter(arch)
    tok = ad.processor.tokenizer
    want = {"img": f"A red chair.{end}", "vid": f"A room.{end}Blue walls.{end}", "txt": f"Hi there.{end}"}
    for conv in read_conversations(d / "mix.json"):
        e = encode(ad, conv, video_frames=2)
        ids, lab = e["input_ids"][0], e["labels"][0]
        assert tok.decode(ids[lab != -100]) == want[conv.id]
        assert torch.equal(lab[lab != -100], ids[lab != -100])
        n_img = int((ids == ad.image_token_id).sum())
        n_vid = int((ids == ad.video_seq_token_id).sum()) if ad.video_seq_token_id != ad.image_token_id else 0
        assert (n_img + n_vid > 0) == (conv.kind is not None)   # media reach the model
        from gaspprobe.training.mix import as_video

        if as_video(ad, conv):  # the family's own video path: video tokens, no image tokens
            assert n_vid > 0 and n_img == 0 and "pixel_values_videos" in e
        if conv.kind == "video":  # asked for images: the frames as image tokens
            ei = encode(ad, conv, video_frames=2, video_input="images")
            assert int((ei["input_ids"][0] == ad.image_token_id).sum()) > 0
            assert tok.decode(ei["input_ids"][0][ei["labels"][0] != -100]) == want["vid"]


def test_stream_schedule_is_a_pure_function_of_position(mix_dir):
    from gaspprobe.training.mix import ConversationStream, read_conversations

    d, _ = mix_dir
    convs = read_conversations(d / "mix.json")
    half = ConversationStream(convs, None, 0.5, seed=3)
    assert [len(half.per_batch(m)) for m in range(6)] == [0, 1, 0, 1, 0, 1]
    s15 = ConversationStream(convs, None, 1.5, seed=3)
    assert [list(s15.per_batch(m)) for m in range(3)] == [[0], [1, 2], [3]]
    # every epoch of 3 samples is a permutation of the 3 records, redrawn per epoch, reproducible
    ids = [s15.record(j).id for j in range(9)]
    assert all(sorted(ids[k:k + 3]) == ["img", "txt", "vid"] for k in (0, 3, 6))
    again = ConversationStream(convs, None, 1.5, seed=3)
    assert [again.record(j).id for j in reversed(range(9))] == ids[::-1]
    # two processes take disjoint samples of the same micro-batch
    r0 = ConversationStream(convs, None, 1.0, seed=3, rank=0, world=2)
    r1 = ConversationStream(convs, None, 1.0, seed=3, rank=1, world=2)
    assert [r0.samples(m)[0].id for m in range(3)] == [s15.record(j).id for j in (0, 2, 4)]
    assert [r1.samples(m)[0].id for m in range(3)] == [s15.record(j).id for j in (1, 3, 5)]


@pytest.mark.slow
def test_training_with_the_mix_logs_the_lm_loss_and_names_its_source(tmp_path, mix_dir):
    from gaspprobe.models.testing import tiny_model_dir
    from gaspprobe.scenes import generate_scene
    from gaspprobe.training.trainer import train

    d, _ = mix_dir
    scenes = [generate_scene(60 + s, frames=4, size=112) for s in range(2)]
    res = train(str(tiny_model_dir("qwen2_5_vl")), scenes, tmp_path / "run", progress=False,
                steps=3, batch_size=1, frames_per_clip=2, clip_window=2, clips_per_scene=2, checkpoint_every=3,
                eval_every=0, val_fraction=0.0, warmup_steps=1, lora_rank=4, lambda_lm=0.5,
                mix_data=[str(d / "mix.json")], mix_ratio=1.0, mix_video_frames=2)
    log = res.log
    assert (log.loss_lm > 0).all()
    assert (log.loss - (log.loss_corr + 0.1 * log.loss_depth + 0.5 * log.loss_lm)).abs().max() < 1e-4
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["text_sources"] == [{"kind": "ConversationStream", "files": [str(d / "mix.json")], "records": 3,
                                  "ratio": 1.0}]
