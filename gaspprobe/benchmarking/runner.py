"""The benchmark runner: samples -> batched greedy generation -> parse -> score -> run folder.

Start at :func:`run` (what ``gaspprobe bench run`` and :func:`gaspprobe.api.bench` call).
Rescoring predictions made elsewhere is :mod:`gaspprobe.benchmarking.rescoring`; parsing, metrics
and the tables are :mod:`gaspprobe.benchmarking.scoring`.

The run folder is opened with the run kernel (:func:`gaspprobe.runs.open_run`, kind ``bench``,
published incrementally), so two processes on one ``--out`` never interleave (the second is
refused naming the holder, or waits with ``wait=True``), a rerun with another config is refused
naming the keys, and a killed run resumes. It holds:

- ``predictions.jsonl``: one record per finished sample (``id``, ``question_type``, ``task``,
  ``prompt``, ``raw``, ``parsed``, ``target``, ``score``, ``failed`` (None or the reason), the
  blind baseline's ``blind_raw``/``blind_score``, and for videos the sampled ``frame_indices``),
  flushed and fsynced per record; a rerun skips every id already finished (failed samples are
  retried) and the last record of an id wins.
- ``scores.parquet`` / ``scores.csv``, ``summary.json`` (:func:`gaspprobe.benchmarking.scoring.finalize`).
- ``manifest.json``: ``status`` is "complete" only at the very end; a rerun of a complete run
  returns at once, unless some samples failed (a missing or corrupt video): those alone are
  retried, so a repaired file is picked up.

Models: a model string goes to :func:`gaspprobe.models.load` (an adapter with ``generate``), an
object with ``generate`` is used as is, the names of :data:`gaspprobe.benchmarking.answerers.ANSWERERS`
need no model, and ``blind:<model>`` runs a model without its images/video.

Sharding: under ``accelerate launch --multi_gpu --num_processes N`` (or ``torchrun --nproc_per_node N``,
which also works on CPU) each process takes a contiguous share of the unfinished samples
(``PartialState.split_between_processes``) and writes ``predictions.rank{r}.jsonl``; the main
process holds the run folder's lock, gathers the shards by id into ``predictions.jsonl`` and
writes the tables.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from gaspprobe import io
from gaspprobe.benchmarking import answerers, profiles
from gaspprobe.benchmarking.card import BenchmarkCard, Sample, load_card
from gaspprobe.benchmarking.scoring import (BenchResult, load_samples, PREDICTIONS, SUMMARY, latest, parser_for, record, resolve_judge,
                                            score_sample, with_judge)
from gaspprobe.errors import ConfigError, DataError, GaspError

# kept for callers of the old module layout
from gaspprobe.benchmarking.rescoring import read_predictions, score  # noqa: E402,F401

SPECIAL_MODELS = tuple(answerers.ANSWERERS.names())
SCORERS = ("generate", "likelihood")
Progress = Callable[[dict], None]


def _object_name(model: Any) -> str:
    return str(getattr(model, "name", None) or getattr(model, "model_id", None) or type(model).__name__)


def _resolve_model(model: Any, samples: Sequence[Sample], seed: int, device: str = "cpu",
                   pixels: dict | None = None) -> tuple[Any, str]:
    if isinstance(model, str):
        if model.startswith(answerers.BLIND_PREFIX):
            inner, _ = _resolve_model(model[len(answerers.BLIND_PREFIX):], samples, seed, device, pixels)
            if isinstance(inner, answerers.Answerer):
                raise GaspError(f"{model!r}: blind needs a model, not a special answerer")
            return answerers.Blind(inner, model), model
        if answerers.is_special(model):
            return answerers.make(model, samples, seed), model
        from gaspprobe import models

        return models.load(model, device=device, pixels=pixels), model
    if not hasattr(model, "generate"):
        raise GaspError(f"model must be a name/path or an adapter with .generate(), got {type(model).__name__}")
    return model, _object_name(model)


# --------------------------------------------------------------------------- visuals
class _VisualLoader:
    """Loads a sample's frames/images; keeps the last few decoded videos (questions share videos)."""

    def __init__(self, frames: int | None, sampler: str = "linspace", keep: int = 4, jpeg: int = 0,
                 jpeg_quality: int = 75, jpeg_images: bool = False, qwen_pixels: tuple[int, int] | None = None,
                 qwen_patch: int = 14):
        self.frames = frames
        self.sampler = sampler
        self.keep = keep
        self.jpeg = jpeg
        self.jpeg_quality = jpeg_quality
        self.jpeg_images = jpeg_images
        self.qwen_pixels = qwen_pixels  # lmms-eval's Qwen video path: resize as qwen-vl-utils does
        self.qwen_patch = qwen_patch
        self._cache: dict[str, tuple] = {}

    def __call__(self, s: Sample, as_video: bool = False) -> tuple[list, dict]:
        """Frames / images of a sample; ``jpeg`` round trips apply to frames decoded from a video
        that are fed as images (``as_video`` False), as harnesses that save frames do, and to a
        benchmark's images when ``jpeg_images``."""
        vis, extra = self._load(s)
        if ("video" in s.visual and not as_video) or ("video" not in s.visual and self.jpeg_images):
            for _ in range(self.jpeg):
                vis = profiles.jpeg_roundtrip(vis, self.jpeg_quality)
        return vis, extra

    def _load(self, s: Sample) -> tuple[list, dict]:
        if "video" in s.visual:
            from gaspprobe.benchmarking.vsibench import read_video_frames

            path = s.visual["video"]
            if path not in self._cache:
                if len(self._cache) >= self.keep:
                    self._cache.pop(next(iter(self._cache)))
                info: dict = {}
                fr, idx, n = read_video_frames(path, int(self.frames or 32), sampler=self.sampler, info=info)
                if self.qwen_pixels is not None:
                    decoded = profiles.qwen_decoded(n, int(self.frames or 32), self.sampler, info.get("fps"))
                    fr = profiles.qwen_video_resize(fr, decoded, *self.qwen_pixels, patch=self.qwen_patch)
                self._cache[path] = fr, idx, n, info.get("fps")
            fr, idx, n, fps = self._cache[path]
            return list(fr), {"frame_indices": [int(i) for i in idx], "video_frames": int(n),
                              "frame_sampler": self.sampler, "video_fps": None if fps is None else float(fps)}
        from gaspprobe.benchmarking.allangles import read_images

        return read_images(s.visual.get("images", [])), {}


def visual_loader(profile: profiles.Profile, family: str | None, frames: int | None) -> _VisualLoader:
    """The loader a profile feeds a family with: its frame sampler, JPEG round trips and, where the
    harness resizes video frames with qwen-vl-utils first, that resize."""
    qwen = family in profile.qwen_resize and profile.wants_video(family, {"video": True})
    return _VisualLoader(frames, profile.sampler_for(family), jpeg=profile.jpeg_passes(family),
                         jpeg_quality=profile.jpeg_quality, jpeg_images=profile.jpeg_images,
                         qwen_pixels=profile.pixels.get(family or "") if qwen else None,
                         qwen_patch=profile.qwen_resize.get(family or "", 14))


# --------------------------------------------------------------------------- run
_load = load_samples  # the old private name


def _dist_state():
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    # without CUDA, accelerate only forms a (gloo) process group when asked for cpu explicitly
    st = PartialState(cpu=not torch.cuda.is_available())
    return st if st.num_processes > 1 else None


def _variant_with_profile(card: BenchmarkCard, variant: str, prof: profiles.Profile) -> str:
    """A profile that changes the prompt adds a derived variant ``<variant>+<profile>`` to the card."""
    over = prof.prompt.get(card.format)
    if not over:
        return variant
    name = f"{variant}+{prof.name}"
    card.prompt_variants[name] = {**card.variant(variant), **over}
    return name


def run(model: Any, benchmark: str, data: str | Path, out: str | Path, *, video_root: str | Path | None = None,
        image_root: str | Path | None = None, frames: int | None = None, limit: int | None = None,
        batch_size: int = 1, prompt_variant: str | None = None, parser: str | None = None,
        max_new_tokens: int | None = None, seed: int = 0, progress: Progress | bool | None = None,
        device: str | None = None, judge: Any = None, profile: str | None = None, scorer: str = "generate",
        blind: bool | None = None, label: str | None = None, force: bool = False, pixels: dict | None = None,
        wait: bool = False, modality: str = "images") -> BenchResult:
    """Run ``model`` on ``benchmark`` (card name or YAML path) over ``data`` into run folder ``out``.

    Args:
        model: model id / local dir (``gaspprobe.models.load``), a special answerer
            (``oracle:answers``, ``baseline:frequency``, ``baseline:random``, ``baseline:chance``),
            ``blind:<model>``, or an adapter object with ``generate``.
        data: question file or folder in the benchmark's schema, or ``"hf"`` for the hub dataset.
        video_root / image_root: where videos / images live (default: beside the question file).
        frames: frames per video (default: the card's, 32 for VSI-Bench); recorded.
        limit: evaluate only the first ``limit`` questions (dataset order).
        batch_size: samples per ``generate`` call (results do not depend on it); batches are
            grouped by prompt length within windows of consecutive samples.
        prompt_variant / parser: named non-default choices of the card (default: the profile's).
        max_new_tokens: default the card's (16).
        seed: for ``baseline:random``.
        progress: a callback ``progress({"benchmark", "done", "total", "score"})`` called after
            every batch (the CLI draws a bar with it); None/False/True: no callback.
        device: where a model given by name is loaded (default: the shard's device under
            accelerate/torchrun, else "cuda" when available, else "cpu"); not part of the config.
        judge: optional answer extractor for multiple-choice outputs the rule parser cannot read
            (callable ``judge(raw, sample) -> letter | None`` or ``"module:function"``).
        profile: harness profile (:mod:`gaspprobe.benchmarking.profiles`; default ``gaspprobe``).
        scorer: ``"generate"`` (official: generate, parse) or ``"likelihood"`` (NON-official,
            multiple choice by option likelihood, :mod:`gaspprobe.benchmarking.likelihood`).
        blind: also run the model without images/video per sample (``baselines.blind``);
            default on for real models, off for special answerers.
        label: recorded as the manifest's ``model_label`` (the loop's "base"/"gasp").
        pixels: the processor's pixel budget (``min_pixels`` / ``max_pixels`` ..., see
            :func:`gaspprobe.models.loading.apply_pixels`); None = the checkpoint's. Recorded in the config.
        modality: with the default ``gaspprobe`` profile, how a sample's VIDEO is fed: "images"
            (its sampled frames as images, the historical numbers) or "video" (the frames as one
            video through the family's own video path); image samples stay images. Harness profiles
            decide for themselves (``Profile.visual``). Recorded in the config and the summary.
        force: start over even if ``out`` holds a finished or differing run.
        wait: wait for another process using ``out`` instead of refusing.
    Returns:
        :class:`BenchResult` with the run folder and its summary.
    """
    from gaspprobe.runs import decide, open_run

    t0 = time.perf_counter()
    card = load_card(benchmark)
    out = Path(out)
    if scorer not in SCORERS:
        raise GaspError(f"scorer: expected one of {', '.join(SCORERS)}, got {scorer!r}")
    prof = profiles.get(profile)
    variant = _variant_with_profile(card, prompt_variant or card.prompt_variant, prof)
    card.variant(variant)
    parser_name = card.check_parser(parser or prof.parser.get(card.format))
    k = frames if frames is not None else card.frames
    has_video = card.format == "vsibench" or bool(card.frames)
    if not has_video:
        k = None
    if batch_size < 1:
        raise GaspError(f"batch_size: expected >= 1, got {batch_size}")
    if k is not None and k < 1:
        raise GaspError(f"frames: expected >= 1, got {k}")
    judge_fn, judge_name = resolve_judge(judge)
    model_str = model if isinstance(model, str) else None
    is_special = model_str is not None and answerers.is_special(model_str)
    if model_str is not None and is_special and model_str not in answerers.ANSWERERS:
        answerers.ANSWERERS.get(model_str)  # one-line error naming the supported answerers
    if blind is None:  # real models (by name, or adapters with a processor); never answerers or test doubles
        blind = (model_str is not None and not is_special and not model_str.startswith(answerers.BLIND_PREFIX)) \
            or (model_str is None and profiles.has_processor(model))
    do_blind = bool(blind)
    mnt = int(max_new_tokens or card.max_new_tokens)
    config = {"model": model_str or _object_name(model), "benchmark": card.name, "card_version": card.version,
              "data": str(data), "video_root": None if video_root is None else str(video_root),
              "image_root": None if image_root is None else str(image_root), "frames": k, "limit": limit,
              "prompt_variant": variant, "parser": parser_name, "max_new_tokens": mnt, "seed": seed,
              "judge": judge_name}
    # keys added later are written only when not at their old default, so older runs still resume
    if prof.name != profiles.DEFAULT:
        config["profile"] = prof.name
    if scorer != "generate":
        config["scorer"] = scorer
    if do_blind:
        config["blind"] = True
    if pixels:
        config["pixels"] = dict(pixels)
    from gaspprobe.models.video import check_modality

    if check_modality(modality) != "images":
        if not prof.uses_adapter_generate:
            raise ConfigError(f"modality: profile {prof.name!r} decides how videos are fed (its own inputs); "
                              f"modality applies to the default profile {profiles.DEFAULT!r}")
        config["modality"] = modality
    state = _dist_state()
    is_main = state is None or state.is_main_process
    extra = {"model": config["model"], "benchmark": card.name, "card_version": card.version,
             "options": {"batch_size": batch_size}}

    rk = open_run(out, "bench", config, publish="incremental", seed=seed, label=label, force=force,
                  wait=wait) if is_main else None
    try:
        if rk is None:  # other shards: the same refusal as the main process, without the lock
            decide(out, "bench", config, {}, on_change="replace" if force else "refuse")
        if is_main and rk.cached and (out / SUMMARY).exists():
            summary = io.read_json(out / SUMMARY)
            if not summary.get("n_failed"):
                if state is not None:
                    state.wait_for_everyone()
                return BenchResult(out, summary)  # nothing left to do
            # a complete run with failed samples (a missing/corrupt video, say): retry just those
        if is_main:
            rk.start(**extra)
        if state is not None:
            state.wait_for_everyone()
            if not is_main and io.read_manifest(out).get("status") == "complete":
                return BenchResult(out, io.read_json(out / SUMMARY))

        samples = load_samples(card, data, video_root, image_root, variant, limit)
        if device is None:  # each shard on its own accelerator; a single process on cuda:0 if there is one
            import torch

            device = str(state.device) if state is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        mdl, model_name = _resolve_model(model, [s for s in samples if not s.error], seed, device, pixels)
        prof.check(profiles.family_of(mdl) if profiles.has_processor(mdl) else None, card.format)
        if modality != "images" and has_video:
            if not hasattr(mdl, "check_modality"):
                raise ConfigError(f"modality: {model_name} takes no video input")
            mdl.check_modality(modality)
        if scorer == "likelihood" and not profiles.has_processor(mdl) and not hasattr(mdl, "option_logprobs"):
            raise GaspError(f"scorer 'likelihood' needs a model with a processor and forward pass; "
                            f"{model_name} has none")
        pred_path = out / PREDICTIONS
        # every process must see the same finished set: read it before the barrier, i.e. before any
        # process can start appending new records
        done = latest(io.read_jsonl(pred_path) + [r for p in sorted(out.glob("predictions.rank*.jsonl"))
                                                  for r in io.read_jsonl(p)])
        todo = [s for s in samples if s.id not in done or done[s.id].get("failed")]
        my_path = pred_path
        if state is not None:
            state.wait_for_everyone()
            with state.split_between_processes(todo) as mine:
                todo = list(mine)
            my_path = out / f"predictions.rank{state.process_index}.jsonl"

        parse = with_judge(parser_for(card, parser_name), judge_fn)
        ctx = _Context(mdl, card, parse, prof, k, mnt, scorer, do_blind and not isinstance(mdl, answerers.Answerer),
                       None if state is None else state.process_index, modality)
        _generate_all(ctx, todo, my_path, batch_size, progress if callable(progress) and is_main else None, done)

        if state is not None:
            state.wait_for_everyone()
        summary: dict = {}
        if is_main:
            shards = sorted(out.glob("predictions.rank*.jsonl"))
            if shards:  # gather the shards (this run's, or a crashed sharded run's) into one file
                with io.JsonlAppender(pred_path) as app:
                    for p in shards:
                        for r in io.read_jsonl(p):
                            app.write(r)
                for p in shards:
                    p.unlink()
            from gaspprobe.benchmarking.likelihood import LABEL
            from gaspprobe.benchmarking.scoring import finalize

            meta = {"frames": k, "prompt_variant": variant, "parser": parser_name, "max_new_tokens": mnt,
                    "data": str(data), "data_synthetic": card.synthetic or _synthetic_data(data),
                    "judge": judge_name, "profile": prof.name,
                    "frame_sampler": prof.sampler_for(profiles.family_of(mdl)) if k else None,
                    "scorer": scorer, "official": scorer == "generate", "modality": modality,
                    "scorer_label": LABEL if scorer == "likelihood" else "generate + official parser",
                    "seconds": round(time.perf_counter() - t0, 3)}
            summary = finalize(out, card, samples, latest(io.read_jsonl(pred_path)), model_name, meta)
            rk.complete(**extra)
        if state is not None:
            state.wait_for_everyone()
            summary = io.read_json(out / SUMMARY)
        return BenchResult(out, summary)
    finally:
        if rk is not None:
            rk.close()


def _synthetic_data(data: Any) -> bool:
    """True when ``data`` (a folder or a file in one) was written by ``gaspprobe bench synthesize``,
    so a real card's summary (blink_depth over synthetic BLINK files) says its data is synthetic."""
    p = Path(str(data))
    for d in (p, p.parent):
        m = d / io.MANIFEST
        if m.is_file():
            try:
                man = io.read_json(m)
            except (DataError, OSError):  # an unreadable manifest is not ours to judge here
                return False
            return isinstance(man, dict) and man.get("kind") == "bench_data"
    return False


# --------------------------------------------------------------------------- generation
@dataclass
class _Context:
    mdl: Any
    card: BenchmarkCard
    parse: Callable
    profile: profiles.Profile
    frames: int | None
    max_new_tokens: int
    scorer: str
    blind: bool
    rank: int | None
    modality: str = "images"

    def video(self, s: "Sample") -> bool:
        """Whether the default profile feeds sample ``s`` as one video (``modality`` video, a video sample)."""
        return self.modality == "video" and "video" in s.visual


def length_groups(todo: Sequence[Sample], batch_size: int, window: int = 8) -> list[list[Sample]]:
    """Batches of ``batch_size`` with similar prompt lengths: within each window of
    ``window * batch_size`` consecutive samples (so questions about one video stay close and its
    decoded frames are reused), samples are sorted by prompt length, then cut into batches.
    Greedy results do not depend on the grouping."""
    if batch_size <= 1:
        return [[s] for s in todo]
    out: list[list[Sample]] = []
    w = window * batch_size
    for a in range(0, len(todo), w):
        chunk = sorted(todo[a: a + w], key=lambda s: (len(s.visual.get("images", [])), len(s.prompt)))
        out += [chunk[b: b + batch_size] for b in range(0, len(chunk), batch_size)]
    return out


def _answers(ctx: _Context, ok: list[tuple[Sample, list, dict]]) -> list[tuple[str, dict]]:
    """Raw answers (and record extras) for loaded samples, under the context's profile and scorer."""
    mdl, prof = ctx.mdl, ctx.profile
    if isinstance(mdl, answerers.Answerer):
        return [(mdl.answer(s), {}) for s, _, _ in ok]
    res: list[tuple[str, dict] | None] = [None] * len(ok)
    gen_idx = list(range(len(ok)))
    if ctx.scorer == "likelihood":
        from gaspprobe.benchmarking import likelihood

        gen_idx = []
        for i, (s, vis, extra) in enumerate(ok):
            if s.kind != "mca" or not s.options:
                gen_idx.append(i)
                continue
            lps = _option_logprobs(ctx, s, vis, blind=False, extra=extra)
            res[i] = (likelihood.pick(s.options, lps), {"option_logprobs": lps})
    if gen_idx:
        sub = [ok[i] for i in gen_idx]
        if prof.uses_adapter_generate or not profiles.has_processor(mdl):
            raws = [""] * len(sub)
            for as_video in sorted({ctx.video(s) for s, _, _ in sub}):  # one call per modality
                part = [i for i, (s, _, _) in enumerate(sub) if ctx.video(s) == as_video]
                kw = {"modality": "video"} if as_video else {}
                got = mdl.generate([(sub[i][1], sub[i][0].prompt) for i in part], max_new_tokens=ctx.max_new_tokens,
                                   **kw)
                if len(got) != len(part):
                    raise GaspError(f"model returned {len(got)} answers for {len(part)} prompts")
                for i, raw in zip(part, got):
                    raws[i] = raw
        else:
            fam = profiles.family_of(mdl)
            items = [(vis, s.prompt, prof.wants_video(fam, s.visual), extra) for s, vis, extra in sub]
            raws = profiles.generate_inputs(mdl, profiles.build_inputs(mdl, items, prof),
                                            max_new_tokens=ctx.max_new_tokens, stop=prof.stop_for(fam),
                                            strip=prof.strip_for(fam))
        if len(raws) != len(sub):
            raise GaspError(f"model returned {len(raws)} answers for {len(sub)} prompts")
        for i, raw in zip(gen_idx, raws):
            res[i] = (str(raw), {})
    return res  # type: ignore[return-value]


def _option_logprobs(ctx: _Context, s: Sample, vis: list, *, blind: bool, extra: dict | None = None) -> list[float]:
    from gaspprobe.benchmarking import likelihood

    mdl, prof = ctx.mdl, ctx.profile
    if hasattr(mdl, "option_logprobs") and not profiles.has_processor(mdl):
        return list(mdl.option_logprobs([] if blind else vis, s.prompt, sorted(s.options)))
    tok = getattr(mdl.processor, "tokenizer", mdl.processor)
    conts = likelihood.continuation_ids(tok, sorted(s.options))
    if blind:
        inputs = profiles.text_inputs(mdl, [s.prompt], system=prof.system_prompt(profiles.family_of(mdl)))
    elif prof.uses_adapter_generate:
        inputs = mdl.prepare([(vis, s.prompt)], add_generation_prompt=True,
                             **({"modality": "video"} if ctx.video(s) else {}))
    else:
        fam = profiles.family_of(mdl)
        inputs = profiles.build_inputs(mdl, [(vis, s.prompt, prof.wants_video(fam, s.visual), extra or {})], prof)
    return likelihood.option_logprobs(mdl.model, inputs, conts)


def _blind_answers(ctx: _Context, samples: list[Sample]) -> list[str]:
    mdl, prof = ctx.mdl, ctx.profile
    out: list[str | None] = [None] * len(samples)
    gen = []
    for i, s in enumerate(samples):
        if ctx.scorer == "likelihood" and s.kind == "mca" and s.options:
            from gaspprobe.benchmarking import likelihood

            out[i] = likelihood.pick(s.options, _option_logprobs(ctx, s, [], blind=True))
        else:
            gen.append(i)
    if gen:
        fam = profiles.family_of(mdl)
        raws = profiles.blind_generate(mdl, [samples[i].prompt for i in gen], max_new_tokens=ctx.max_new_tokens,
                                       system=None if prof.uses_adapter_generate else prof.system_prompt(fam),
                                       stop=prof.stop_for(fam), strip=prof.strip_for(fam))
        for i, r in zip(gen, raws):
            out[i] = str(r)
    return out  # type: ignore[return-value]


def _generate_all(ctx: _Context, todo: list[Sample], path: Path, batch_size: int, progress: Progress | None,
                  done: dict) -> None:
    """Generate, parse, score and append a record per sample, ``batch_size`` samples per call."""
    needs_visuals = getattr(ctx.mdl, "needs_visuals", True)
    fam = profiles.family_of(ctx.mdl) if profiles.has_processor(ctx.mdl) else None
    loader = visual_loader(ctx.profile, fam, ctx.frames)
    scores = [float(r.get("score") or 0.0) for r in done.values() if not r.get("failed")]
    n_done, total = 0, len(todo)

    def tick(n: int) -> None:
        nonlocal n_done
        n_done += n
        if progress is not None:
            progress({"benchmark": ctx.card.name, "done": n_done, "total": total,
                      "score": 100 * sum(scores) / len(scores) if scores else None})

    with io.JsonlAppender(path) as app:
        for batch in length_groups(todo, batch_size):
            ok: list[tuple[Sample, list, dict]] = []
            for s in batch:
                if s.error:  # a row that did not validate: recorded as failed, never run
                    app.write(record(s, None, None, 0.0, s.error))
                    tick(1)
                    continue
                if not needs_visuals:
                    ok.append((s, [], {}))
                    continue
                try:
                    vis, extra = loader(s, as_video=ctx.profile.wants_video(fam, s.visual))
                except DataError as e:  # one bad sample: recorded, scored 0, the run goes on
                    app.write(record(s, None, None, 0.0, str(e)))
                    tick(1)
                    continue
                ok.append((s, vis, extra))
            if not ok:
                continue
            answers = _answers(ctx, ok)
            blind = _blind_answers(ctx, [s for s, _, _ in ok]) if ctx.blind else None
            for j, ((s, _, extra), (raw, more)) in enumerate(zip(ok, answers)):
                exp = ctx.mdl.expected_score(s) if isinstance(ctx.mdl, answerers.Answerer) else None
                if exp is not None:
                    parsed, sc = None, float(exp)
                else:
                    parsed, sc = score_sample(s, str(raw), ctx.parse, ctx.card)
                extra = {**extra, **more}
                if blind is not None:
                    bp, bs = score_sample(s, blind[j], ctx.parse, ctx.card)
                    extra.update(blind_raw=blind[j], blind_parsed=bp, blind_score=bs)
                if ctx.rank is not None:
                    extra["process"] = ctx.rank
                app.write(record(s, str(raw), parsed, sc, None, extra))
                scores.append(sc)
            tick(len(ok))
