"""The benchmark runner on the schema fixtures: prompts, oracle, resume, failures, rescoring, CLI, sharding."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gaspprobe import io
from gaspprobe.benchmarking.card import load_card
from gaspprobe.benchmarking.runner import run, score
from gaspprobe.errors import DataError, GaspError

FIX = Path(__file__).parent / "fixtures" / "bench"
VSI = FIX / "vsi"
AA = FIX / "allangles"


class FakeAdapter:
    """Deterministic stand-in for a VLM: answers from a table (default "A"), counts calls, keeps inputs."""

    name = "fake"

    def __init__(self, answers=None, fail_after=None):
        self.answers = answers or {}
        self.calls = 0
        self.batches = []
        self.fail_after = fail_after

    def generate(self, batch, max_new_tokens=16):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated crash")
        self.calls += 1
        self.batches.append(batch)
        return [self.answers.get(prompt, "A") for _, prompt in batch]


def _samples(benchmark, data, **kw):
    from gaspprobe.benchmarking.registry import LOADERS

    card = load_card(benchmark)
    return LOADERS.get(card.format)(card, data, **kw)


# --------------------------------------------------------------------------- prompts (snapshots)
def test_vsibench_prompt_snapshots():
    s = {x.id: x for x in _samples("vsibench", VSI)}
    assert s["0"].prompt == ("These are frames of a video.\nHow many chair(s) are in this room?\n"
                             "Please answer the question using a single word or phrase.")
    assert s["4"].prompt == (
        "These are frames of a video.\n"
        "Measuring from the closest point of each object, which of these objects (sofa, lamp, tv, bed) is the "
        "closest to the table?\nOptions:\nA. sofa\nB. lamp\nC. tv\nD. bed\n"
        "Answer with the option's letter from the given choices directly.")
    assert s["4"].options == {"A": "sofa", "B": "lamp", "C": "tv", "D": "bed"}
    assert s["0"].visual["video"].endswith("vsi/scannet/scene0000_00.mp4")
    api = {x.id: x for x in _samples("vsibench", VSI, prompt_variant="api")}
    assert api["0"].prompt.endswith("\nDo not response anything other than a single number!")
    assert api["4"].prompt == s["4"].prompt


def test_allangles_prompt_snapshots():
    s = {x.id: x for x in _samples("allangles", AA)}
    assert s["1"].prompt == ("Question: What is the color of the ball held by the person on the left in View 1?\n"
                             "Options:\nA. red\nB. blue\nC. green\n"
                             "Please select the correct answer from the options above.")
    paper = {x.id: x for x in _samples("allangles", AA, prompt_variant="paper")}
    assert paper["1"].prompt.endswith("C. green\nAnswer with the option's letter from the given choices directly.")
    assert s["0"].visual["images"][-1].endswith("allangles/scene_a/view3.png")
    assert s["0"].pair_idx is None and s["1"].pair_idx == 1


# --------------------------------------------------------------------------- oracle, baselines, outputs
@pytest.mark.parametrize("bench,data", [("vsibench", VSI), ("allangles", AA)])
def test_oracle_scores_100_and_writes_the_run_folder(tmp_path, bench, data):
    r = run("oracle:answers", bench, data, tmp_path, progress=False)
    assert r.overall == pytest.approx(100.0)
    assert all(v == pytest.approx(100.0) for v in r.tasks.values())
    s = io.read_json(tmp_path / "summary.json")
    for key in ("model", "benchmark", "overall", "tasks", "n", "n_failed", "parse_failures", "frames",
                "prompt_variant", "card_version"):
        assert key in s
    assert s["model"] == "oracle:answers" and s["n"] == len(_samples(bench, data))
    m = io.read_manifest(tmp_path, kind="bench")
    assert m["status"] == "complete" and m["model"] == "oracle:answers"
    df = io.read_table(tmp_path / "scores.parquet")
    assert list(df.columns[:8]) == ["model", "benchmark", "id", "question_type", "prediction", "parsed", "target",
                                    "score"]
    assert (tmp_path / "scores.csv").exists()
    if bench == "allangles":
        pc = s["paired_consistency"]
        assert set(pc) == {"attribute_identification", "relative_distance", "relative_direction", "manipulation",
                           "camera_pose_estimation"}
        assert all(v["CC"] == 100.0 for v in pc.values())
    else:
        assert s["frames"] == 32 and len(s["tasks"]) == 8


def test_baselines_from_the_data(tmp_path):
    r = run("baseline:frequency", "vsibench", VSI, tmp_path / "f", progress=False)
    # counting answers are "4" and "2": the tie goes to the smaller string "2";
    # MRA(2 | 4): relative error 0.5 passes only theta = 0.50 -> 0.1; MRA(2 | 2) = 1
    assert r.tasks["object_counting"] == pytest.approx(100 * (0.1 + 1.0) / 2)
    assert r.summary["baselines"]["frequency"]["overall"] == pytest.approx(r.overall)
    chance = r.summary["baselines"]["chance"]
    assert chance["overall"] is None  # no random row for numerical tasks
    # rel-dir fixture: easy x2 (1/2), medium (1/3), hard (1/4)
    assert chance["tasks"]["object_rel_direction"] == pytest.approx(100 * (1 / 2 + 1 / 3 + 1 / 4) / 3)
    r2 = run("baseline:random", "vsibench", VSI, tmp_path / "r", progress=False, seed=3)
    r3 = run("baseline:random", "vsibench", VSI, tmp_path / "r3", progress=False, seed=3, batch_size=5)
    assert r2.scores()["parsed"].tolist() == r3.scores()["parsed"].tolist()


# --------------------------------------------------------------------------- frames and batching
def test_frames_are_uniform_linspace_and_recorded(tmp_path):
    fake = FakeAdapter()
    run(fake, "vsibench", VSI, tmp_path, frames=4, limit=1, progress=False)
    frames, _ = fake.batches[0][0]
    assert len(frames) == 4 and frames[0].dtype == np.uint8 and frames[0].shape == (24, 32, 3)
    # the fixture's frame i is grey 20*i; floor(linspace(0, 11, 4)) = 0, 3, 7, 11
    np.testing.assert_allclose([f.mean() for f in frames], [0, 60, 140, 220], atol=4)
    rec = io.read_jsonl(tmp_path / "predictions.jsonl")[0]
    assert rec["frame_indices"] == [0, 3, 7, 11] and rec["video_frames"] == 12
    assert io.read_json(tmp_path / "summary.json")["frames"] == 4


def test_batching_does_not_change_results(tmp_path):
    answers = {s.prompt: ("B" if i % 3 else "2") for i, s in enumerate(_samples("vsibench", VSI))}
    a, b = FakeAdapter(answers), FakeAdapter(answers)
    r1 = run(a, "vsibench", VSI, tmp_path / "b1", frames=2, progress=False)
    r5 = run(b, "vsibench", VSI, tmp_path / "b5", frames=2, batch_size=5, progress=False)
    assert a.calls == 12 and b.calls == 3
    assert r1.overall == r5.overall
    assert r1.scores()["score"].tolist() == r5.scores()["score"].tolist()


# --------------------------------------------------------------------------- resume
def test_resume_does_not_recompute(tmp_path):
    crashing = FakeAdapter(fail_after=5)
    with pytest.raises(KeyboardInterrupt):
        run(crashing, "allangles", AA, tmp_path, progress=False)
    assert len(io.read_jsonl(tmp_path / "predictions.jsonl")) == 5
    assert io.read_manifest(tmp_path)["status"] == "running"
    with open(tmp_path / "predictions.jsonl", "a") as f:  # a writer killed mid-line
        f.write('{"id": "5", "raw": "A", "sco')
    second = FakeAdapter()
    r = run(second, "allangles", AA, tmp_path, progress=False)
    assert second.calls == 11 - 5  # only the unfinished samples
    assert r.summary["n"] == 11 and io.read_manifest(tmp_path)["status"] == "complete"
    third = FakeAdapter()
    t0 = time.perf_counter()
    r3 = run(third, "allangles", AA, tmp_path, progress=False)
    assert third.calls == 0 and time.perf_counter() - t0 < 1.0
    assert r3.overall == r.overall


def test_rerun_with_another_config_is_refused(tmp_path):
    run("oracle:answers", "vsibench", VSI, tmp_path, progress=False)
    with pytest.raises(DataError, match="frames"):
        run("oracle:answers", "vsibench", VSI, tmp_path, frames=8, progress=False)


# --------------------------------------------------------------------------- bad input
def test_missing_video_is_a_failed_sample_and_the_run_goes_on(tmp_path):
    data = tmp_path / "vsi"
    shutil.copytree(VSI, data)
    (data / "arkitscenes" / "41069025.mp4").unlink()
    (data / "scannet" / "scene0000_00.mp4").write_bytes(b"not a video")
    fake = FakeAdapter()
    r = run(fake, "vsibench", data, tmp_path / "run", frames=2, progress=False)
    assert r.summary["n_failed"] == 12 and fake.calls == 0
    reasons = set(r.summary["failures"].values())
    assert any("video not found" in x and "41069025.mp4" in x for x in reasons)
    assert any("unreadable video" in x for x in reasons)
    assert all("\n" not in x for x in reasons)
    shutil.copy(VSI / "arkitscenes" / "41069025.mp4", data / "arkitscenes" / "41069025.mp4")
    shutil.copy(VSI / "scannet" / "scene0000_00.mp4", data / "scannet" / "scene0000_00.mp4")
    io.write_manifest(tmp_path / "run", {**io.read_manifest(tmp_path / "run"), "status": "running"})
    r2 = run(fake, "vsibench", data, tmp_path / "run", frames=2, progress=False)
    assert fake.calls == 12 and r2.summary["n_failed"] == 0  # failed samples are retried


def test_missing_image_fails_one_sample(tmp_path):
    data = tmp_path / "aa"
    shutil.copytree(AA, data)
    (data / "scene_b" / "view2.png").unlink()
    r = run(FakeAdapter(), "allangles", data, tmp_path / "run", progress=False)
    assert r.summary["n_failed"] == 6 and r.summary["n"] == 11


def _write_vsi(df, path):
    path.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path / "test-00000-of-00001.parquet", index=False)
    return path


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.drop(columns=["options"]), "missing column.*options"),
    (lambda d: d.assign(question_type=d.question_type.replace("route_planning", "route_plan")), "id 8: unknown question_type 'route_plan'"),
])
def test_vsibench_table_errors_stop_with_one_line(tmp_path, mutate, match):
    df = mutate(pd.read_parquet(VSI / "test-00000-of-00001.parquet"))
    with pytest.raises(DataError, match=match) as e:
        run("oracle:answers", "vsibench", _write_vsi(df, tmp_path / "d"), tmp_path / "r", progress=False)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("mutate,row,match", [
    (lambda d: d.assign(ground_truth=["E" if i == 6 else g for i, g in enumerate(d.ground_truth)]), 6, "ground_truth 'E' is not one of the option letters"),
    (lambda d: d.assign(ground_truth=d.ground_truth.replace("21.5", "big")), 3, "ground_truth 'big' is not a number"),
    (lambda d: d.assign(ground_truth=d.ground_truth.replace("21.5", "0")), 3, "must be a positive number"),
    (lambda d: d.assign(options=[["sofa", "lamp"] if i == 4 else o for i, o in enumerate(d.options)]), 4, "does not start with its letter"),
    (lambda d: d.assign(options=[["A. sofa"] if i == 4 else o for i, o in enumerate(d.options)]), 4, "options: .*at least 2 options, got 1"),
    (lambda d: d.assign(options=[["A. sofa", "C. lamp"] if i == 4 else o for i, o in enumerate(d.options)]), 4, "option 2 is lettered 'C'"),
    (lambda d: d.assign(question=[None if i == 2 else q for i, q in enumerate(d.question)]), 2, "question: expected a string"),
])
def test_vsibench_bad_row_is_a_failed_sample_and_the_rest_runs(tmp_path, mutate, row, match):
    df = mutate(pd.read_parquet(VSI / "test-00000-of-00001.parquet"))
    data = _write_vsi(df, tmp_path / "d")
    shutil.copytree(VSI / "scannet", data / "scannet")
    shutil.copytree(VSI / "arkitscenes", data / "arkitscenes")
    r = run("oracle:answers", "vsibench", data, tmp_path / "r", frames=2, progress=False)
    s = r.summary
    assert s["n_failed"] == 1 and s["n_invalid"] == 1 and s["n"] == 11
    (sid, reason), = s["failures"].items()
    assert sid == str(row) and "\n" not in reason and re.search(match, reason)
    assert reason.startswith(str(data / "test-00000-of-00001.parquet") + f": row {row}: id {row}: ")
    assert s["overall"] == pytest.approx(100.0)  # every valid row still scores (oracle)
    recs = {x["id"]: x for x in io.read_jsonl(tmp_path / "r" / "predictions.jsonl")}
    assert recs[str(row)]["failed"] == reason and len(recs) == 12


@pytest.mark.parametrize("mutate,match", [
    (lambda r: r.pop("pair_idx"), "record 3: missing field.*pair_idx"),
    (lambda r: r.update(answer="D"), "answer 'D' is not one of the options"),
    (lambda r: r.update(image_path="scene_b/view1.png"), "image_path: expected a non-empty list"),
    (lambda r: r.update(B=None, C=None), "at least 2 of A, B, C, got 1"),
])
def test_allangles_bad_record_is_a_failed_sample(tmp_path, mutate, match):
    recs = json.loads((AA / "data.json").read_text())
    mutate(recs[3])
    (tmp_path / "data.json").write_text(json.dumps(recs))
    r = run("oracle:answers", "allangles", tmp_path / "data.json", tmp_path / "r", image_root=AA, progress=False)
    (sid, reason), = r.summary["failures"].items()
    assert sid == "3" and re.search(match, reason) and reason.startswith(f"{tmp_path / 'data.json'}: row 3: ")
    assert r.summary["n"] == 10 and r.overall == pytest.approx(100.0)


def test_allangles_unknown_category_stops(tmp_path):
    recs = json.loads((AA / "data.json").read_text())
    recs[3]["category"] = "navigation"
    (tmp_path / "data.json").write_text(json.dumps(recs))
    with pytest.raises(DataError, match="unknown category 'navigation'"):
        run("oracle:answers", "allangles", tmp_path / "data.json", tmp_path / "r", image_root=AA, progress=False)


def test_unknown_names_are_one_line_errors(tmp_path):
    with pytest.raises(GaspError, match="did you mean 'vsibench'"):
        run("oracle:answers", "vsibnch", VSI, tmp_path, progress=False)
    with pytest.raises(GaspError, match="unknown prompt variant"):
        run("oracle:answers", "vsibench", VSI, tmp_path, prompt_variant="fancy", progress=False)
    with pytest.raises(GaspError, match="not offered"):
        run("oracle:answers", "allangles", AA, tmp_path, parser="lmms_eval_lenient", progress=False)
    with pytest.raises(GaspError, match="special model"):
        run("oracle:everything", "vsibench", VSI, tmp_path, progress=False)


def test_lenient_parser_is_an_option_not_the_default(tmp_path):
    answers = {s.prompt: "three" for s in _samples("vsibench", VSI)}
    official = run(FakeAdapter(answers), "vsibench", VSI, tmp_path / "o", frames=1, progress=False)
    lenient = run(FakeAdapter(answers), "vsibench", VSI, tmp_path / "l", frames=1, parser="lmms_eval_lenient",
                  progress=False)
    assert official.summary["parser"] == "vsibench_first_token" and official.tasks["object_counting"] == 0.0
    assert lenient.summary["parser"] == "lmms_eval_lenient"
    # 3 vs 4: relative error 0.25 passes theta 0.50 ... 0.75 (6 of 10); 3 vs 2: error 0.5 -> 0.1
    assert lenient.summary["question_types"]["object_counting"] == pytest.approx(100 * (0.6 + 0.1) / 2)


# --------------------------------------------------------------------------- rescoring
def test_rescore_our_predictions(tmp_path):
    answers = {s.prompt: "B" for s in _samples("allangles", AA)}
    r = run(FakeAdapter(answers), "allangles", AA, tmp_path / "run", progress=False)
    rs = score("allangles", AA, tmp_path / "run" / "predictions.jsonl", tmp_path / "re")
    assert rs.overall == pytest.approx(r.overall)
    assert rs.summary["paired_consistency"] == r.summary["paired_consistency"]


def test_rescore_lmms_eval_samples(tmp_path):
    samples = _samples("vsibench", VSI)
    lines = []
    for i, s in enumerate(samples):
        doc = dict(s.doc)
        if i % 2:
            doc.pop("id")  # then the position doc_id identifies the question
        lines.append({"doc_id": i, "doc": doc, "target": s.target, "arguments": [],
                      "resps": [[s.target + " extra"]], "filtered_resps": [s.target]})
    p = tmp_path / "samples_vsibench.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    rs = score("vsibench", VSI, p, tmp_path / "re", model="lmms")
    assert rs.overall == pytest.approx(100.0) and rs.summary["n"] == 12 and rs.summary["model"] == "lmms"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"something": 1}) + "\n")
    with pytest.raises(DataError, match="line 1"):
        score("vsibench", VSI, bad, tmp_path / "re2")


# --------------------------------------------------------------------------- CLI
def test_cli_run_list_and_errors(tmp_path, capsys):
    from gaspprobe.cli import main

    with pytest.raises(SystemExit) as e:
        main(["bench", "run", "--model", "oracle:answers", "--benchmark", "allangles", "--data", str(AA),
              "--out", str(tmp_path / "run")])
    assert e.value.code == 0
    assert io.read_json(tmp_path / "run" / "summary.json")["overall"] == 100.0
    with pytest.raises(SystemExit) as e:
        main(["bench", "list"])
    assert e.value.code == 0 and "vsibench" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["bench", "run", "--model", "oracle:answers", "--benchmark", "vsibench", "--data",
              str(tmp_path / "nowhere"), "--out", str(tmp_path / "r2")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- tiny real models
@pytest.mark.slow
def test_tiny_model_end_to_end_on_fixtures(tmp_path):
    from gaspprobe.models.testing import tiny_adapter

    ad = tiny_adapter()
    r1 = run(ad, "vsibench", VSI, tmp_path / "v", frames=2, batch_size=4, limit=6, progress=False)
    assert r1.summary["n"] == 6 and r1.summary["n_failed"] == 0
    assert 0.0 <= r1.overall <= 100.0
    r2 = run(ad, "allangles", AA, tmp_path / "a", batch_size=3, progress=False)
    r3 = run(ad, "allangles", AA, tmp_path / "a1", batch_size=1, progress=False)
    assert r2.scores()["prediction"].tolist() == r3.scores()["prediction"].tolist()  # greedy, batch-invariant
    recs = io.read_jsonl(tmp_path / "a" / "predictions.jsonl")
    assert all(isinstance(x["raw"], str) for x in recs)


@pytest.mark.slow
def test_two_process_sharding_gathers_by_id(tmp_path):
    script = tmp_path / "shard.py"
    script.write_text(
        "import sys, torch\ntorch.set_num_threads(1)\nfrom gaspprobe.benchmarking.runner import run\n"
        "r = run('baseline:random', 'allangles', sys.argv[1], sys.argv[2], progress=False)\n")
    out = tmp_path / "run"
    # torchrun: accelerate's own launcher starts a single process on CPU (multi-CPU needs MPI)
    import socket

    with socket.socket() as sk:  # a free port for the rendezvous
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                        str(port), str(script), str(AA), str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    recs = io.read_jsonl(out / "predictions.jsonl")
    # 11 questions: an uneven split (6 + 5), every id exactly once
    assert sorted(int(r["id"]) for r in recs) == list(range(11))
    assert sorted(Counter(r["process"] for r in recs).values()) == [5, 6]
    assert not list(out.glob("predictions.rank*.jsonl"))
    single = run("baseline:random", "allangles", AA, tmp_path / "single", progress=False)
    assert io.read_json(out / "summary.json")["overall"] == pytest.approx(single.overall)


def test_judge_hook_is_off_by_default_and_recorded_when_used(tmp_path):
    answers = {s.prompt: "I would say the second one" for s in _samples("allangles", AA)}
    off = run(FakeAdapter(answers), "allangles", AA, tmp_path / "off", progress=False)
    assert off.summary["judge"] is None and off.summary["parse_failures"] == 11 and off.overall == 0.0
    seen = []

    def judge(raw, sample):
        seen.append(raw)
        return "B" if "second" in raw else None

    on = run(FakeAdapter(answers), "allangles", AA, tmp_path / "on", judge=judge, progress=False)
    assert len(seen) == 11 and on.summary["parse_failures"] == 0
    assert on.summary["judge"].endswith("judge")
    assert io.read_manifest(tmp_path / "on")["config"]["judge"] == on.summary["judge"]
    expected = 100 * sum(s.target == "B" for s in _samples("allangles", AA)) / 11
    assert on.overall == pytest.approx(expected)


def test_rescore_vlmevalkit_tsv(tmp_path):
    samples = _samples("allangles", AA)
    rows = ["index\tprediction"] + [f"{s.id}\tThe answer is {s.target}." for s in samples[:8]]
    p = tmp_path / "model_All_Angles_Bench.tsv"
    p.write_text("\n".join(rows) + "\n")
    rs = score("allangles", AA, p, tmp_path / "re")
    assert rs.overall == pytest.approx(100.0) and rs.summary["n"] == 8 and rs.summary["n_missing"] == 3
    (tmp_path / "bad.tsv").write_text("index\tanswer\n0\tA\n")
    with pytest.raises(DataError, match="prediction"):
        score("allangles", AA, tmp_path / "bad.tsv", tmp_path / "re2")


def test_leftover_shard_files_are_resumed_and_merged(tmp_path):
    first = FakeAdapter(fail_after=4)
    with pytest.raises(KeyboardInterrupt):
        run(first, "allangles", AA, tmp_path, progress=False)
    # pretend those records came from shard 1 of a crashed sharded run
    (tmp_path / "predictions.jsonl").rename(tmp_path / "predictions.rank1.jsonl")
    second = FakeAdapter()
    r = run(second, "allangles", AA, tmp_path, progress=False)
    assert second.calls == 11 - 4 and r.summary["n"] == 11 and r.summary["n_missing"] == 0
    assert not list(tmp_path.glob("predictions.rank*.jsonl"))
    with pytest.raises(GaspError, match="frames"):
        run(FakeAdapter(), "vsibench", VSI, tmp_path / "f0", frames=0, progress=False)
