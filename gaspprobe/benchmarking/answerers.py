"""Special answerers: answers that need no vision-language model, plus the blind wrapper.

:data:`ANSWERERS` maps a ``--model`` name to a class; each entry carries ``expect``, what its
generated test checks on a fixture run's summary (``tests/test_bench_answerers.py`` runs every
entry on every card's fixture):

==================  ========================================================================
oracle:answers      the ground truth: must score 100 on every card
baseline:frequency  the most frequent ground truth of the question type: the summary's
                    ``baselines.frequency``
baseline:random     a seeded uniform option per sample (no answer for numbers)
baseline:chance     not an answer but the *expected* score of a uniform pick (1/n options, 0 for
                    numbers): the summary's ``baselines.chance`` on multiple-choice cards
blind:<model>       the model given no images or video (:class:`Blind`; every real-model run also
                    records this per sample as ``baselines.blind`` unless ``blind=False``)
==================  ========================================================================

Adding one is a class here plus one ``ANSWERERS.register`` line.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

from gaspprobe.benchmarking.card import Sample
from gaspprobe.registry import Registry


class Answerer:
    """Answers from the data itself (never needs frames). ``answer(sample) -> raw text``; an answerer
    with ``expected_score`` gives the score itself instead of a text to parse."""

    needs_visuals = False
    name = ""
    expect: Callable[[dict], bool] | None = None

    def __init__(self, samples: Sequence[Sample], seed: int = 0):
        self.seed = seed

    def answer(self, s: Sample) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def expected_score(self, s: Sample) -> float | None:
        return None


class Oracle(Answerer):
    """The ground truth (a letter or the number as written): scores 100 on a correct card."""

    name = "oracle:answers"

    @staticmethod
    def expect(summary: dict) -> bool:
        return abs(summary["overall"] - 100.0) < 1e-9 and summary["parse_failures"] == 0

    def answer(self, s: Sample) -> str:
        return s.target


class Frequency(Answerer):
    """The most frequent ground truth of each question type (ties: smallest string)."""

    name = "baseline:frequency"

    @staticmethod
    def expect(summary: dict) -> bool:
        return abs(summary["overall"] - summary["baselines"]["frequency"]["overall"]) < 1e-9

    def __init__(self, samples: Sequence[Sample], seed: int = 0):
        from gaspprobe.benchmarking.metrics import most_frequent_answers

        super().__init__(samples, seed)
        self.freq = most_frequent_answers(samples)

    def answer(self, s: Sample) -> str:
        return self.freq[s.question_type]


class RandomPick(Answerer):
    """A uniform option letter, seeded per sample (independent of order and sharding)."""

    name = "baseline:random"

    @staticmethod
    def expect(summary: dict) -> bool:
        return 0.0 <= summary["overall"] <= 100.0

    def answer(self, s: Sample) -> str:
        if s.kind == "mca" and s.options:
            return random.Random(f"{self.seed}:{s.id}").choice(sorted(s.options))
        return ""


class Chance(Answerer):
    """The expected score of a uniform option pick (1/n; 0 for numerical questions)."""

    name = "baseline:chance"

    @staticmethod
    def expect(summary: dict) -> bool:
        ch = summary["baselines"]["chance"]
        return ch is None or all(abs(summary["tasks"][t] - v) < 1e-9 for t, v in ch["tasks"].items())

    def answer(self, s: Sample) -> str:
        return ""

    def expected_score(self, s: Sample) -> float | None:
        return 1.0 / len(s.options) if s.kind == "mca" and s.options else 0.0


class Blind:
    """A model that is shown the prompt without any image or video (the "blind" baseline).

    Wraps any adapter: real adapters get text-only processor inputs
    (:func:`gaspprobe.benchmarking.profiles.generate_batch` with ``blind=True``); an object with
    only ``generate`` gets empty frame lists."""

    needs_visuals = False

    def __init__(self, model: Any, name: str):
        self.model = model
        self.name = name

    def generate(self, batch: Sequence[tuple[Sequence[Any], str]], *, max_new_tokens: int = 16) -> list[str]:
        from gaspprobe.benchmarking.profiles import blind_generate

        return blind_generate(self.model, [p for _, p in batch], max_new_tokens=max_new_tokens)


ANSWERERS: Registry[type] = Registry("special model")
ANSWERERS.register("oracle:answers", Oracle)
ANSWERERS.register("baseline:frequency", Frequency)
ANSWERERS.register("baseline:random", RandomPick)
ANSWERERS.register("baseline:chance", Chance)
BLIND_PREFIX = "blind:"


def is_special(name: str) -> bool:
    """A name of :data:`ANSWERERS` or of its families (``oracle:*``, ``baseline:*``)."""
    return name in ANSWERERS or name.split(":", 1)[0] in ("oracle", "baseline")


def make(name: str, samples: Sequence[Sample], seed: int = 0) -> Answerer:
    """The answerer registered as ``name`` (one-line error naming the supported ones)."""
    return ANSWERERS.get(name)(samples, seed)
