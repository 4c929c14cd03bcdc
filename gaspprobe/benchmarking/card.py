"""Benchmark cards (``gaspprobe/benchmarking/cards/*.yaml``) and the :class:`Sample` every loader produces.

A card is declarative: dataset id / revision / split, prompt variants (the default is the official
one), the parser and metric names (looked up in :mod:`gaspprobe.benchmarking.registry`, never
``eval``'d), the aggregation, ``higher_is_better`` and a ``version`` that is bumped whenever a
prompt or a parsing rule changes. ``load_card("vsibench")`` finds ``gaspprobe/benchmarking/cards/vsibench.yaml``;
``load_card(path)`` reads any card file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Any, Literal

from gaspprobe.config import field, from_dict, load_file
from gaspprobe.errors import ConfigError


@dataclass
class DatasetSpec:
    hf_id: str | None = field(None, help="Hugging Face dataset id (None for synthetic data).")
    config: str | None = field(None, help="HF dataset config name, if any.")
    revision: str | None = field(None, help="HF dataset revision (commit or tag); None = main.")
    split: str = field("test", help="Split to evaluate.")
    data_file: str | None = field(None, help="File name of the question file inside a local data folder.")
    data_files: list[str] = field(default_factory=list,
                                  help="Several question files inside a local data folder, read in this order "
                                       "(one per HF config, e.g. BLINK's subtasks); missing ones are skipped.")
    video_dir: str | None = field(None, help="Default video folder relative to $HF_HOME (lmms-eval cache layout).")


@dataclass
class BenchmarkCard:
    name: str = field(help="Registry name.")
    version: str = field(help="Bumped whenever prompts, parsing or aggregation change.")
    format: str = field(help="Question schema: a name of registry.LOADERS (vsibench, allangles, blink, ...).")
    description: str = field("", help="One paragraph for people.")
    source: str = field("", help="Provenance: official repositories, files and functions reproduced.")
    dataset: DatasetSpec = field(default_factory=DatasetSpec, help="Where the data comes from.")
    prompt_variants: dict[str, dict] = field(default_factory=dict,
                                             help="Named prompt settings; the default one is official.")
    prompt_variant: str = field("official", help="Default prompt variant.")
    parser: str = field("vsibench_first_token", help="Default parser (registry name).")
    parsers: list[str] = field(default_factory=list, help="Parsers allowed as options.")
    metrics: dict[str, str] = field(default_factory=dict, help="Metric per answer kind: {'mca': ..., 'na': ...}.")
    aggregation: str = field("vsibench_macro", help="Aggregation (registry name).")
    higher_is_better: bool = field(True, help="Direction of every metric of the card.")
    frames: int | None = field(None, help="Frames sampled per video (video benchmarks).")
    max_new_tokens: int = field(16, help="Greedy decoding budget.")
    question_types: dict[str, str] = field(default_factory=dict,
                                           help="Raw question type -> answer kind ('mca' or 'na').")
    tasks: dict[str, str] = field(default_factory=dict, help="Raw question type -> reported task.")
    synthetic: bool = field(False, help="True for gaspprobe's synthetic benchmarks.")
    path: str = field("", help="(filled in on load) the card file.")

    def variant(self, name: str | None) -> dict:
        """The prompt settings of variant ``name`` (None = the card's default)."""
        name = name or self.prompt_variant
        if name not in self.prompt_variants:
            raise ConfigError(f"unknown prompt variant {name!r} for {self.name}; "
                              f"known: {', '.join(sorted(self.prompt_variants))}")
        return self.prompt_variants[name]

    def check_parser(self, name: str | None) -> str:
        from gaspprobe.benchmarking.registry import PARSERS

        name = name or self.parser
        PARSERS.get(name)  # one-line error with "did you mean" on an unknown name
        if self.parsers and name not in self.parsers:
            raise ConfigError(f"parser {name!r} is not offered for {self.name}; "
                              f"offered: {', '.join(self.parsers)}")
        return name


@dataclass
class Sample:
    """One benchmark question, ready to run.

    ``id`` is the dataset's id as a string; ``kind`` is "mca" (options, accuracy) or "na"
    (number, MRA); ``options`` maps letter -> option text ({} for NA); ``target`` is the letter or
    the number as a string; ``task`` is the reported task (VSI rel-direction merged, All-Angles
    category); ``visual`` is ``{"video": path}`` or ``{"images": [paths]}``; ``doc`` the raw row.
    """

    id: str
    question_type: str
    kind: Literal["mca", "na"]
    prompt: str
    target: str
    task: str
    options: dict[str, str] = dc_field(default_factory=dict)
    visual: dict[str, Any] = dc_field(default_factory=dict)
    pair_idx: Any = None
    doc: dict[str, Any] = dc_field(default_factory=dict)
    cluster: str | None = None  # what questions share (video / scene) for clustered bootstrap; None: derived
    error: str | None = None  # a row that does not validate: "file: row N (id X): field: why"; never run


def row_error(where: str | Path, row: int, err: Exception) -> str:
    """``"<file>: row <n>: <field>: <why>"`` from a row's DataError (its own file prefix dropped)."""
    msg, prefix = str(err), f"{where}: "
    if msg.startswith(prefix):
        msg = msg[len(prefix):]
    return f"{where}: row {row}: {msg}"


def invalid_sample(sid: str, error: str, question_type: str = "?", task: str = "?") -> Sample:
    """A row that failed validation: recorded as a failed sample (one line naming file, row and
    field), never sent to a model, left out of the aggregation and the baselines."""
    return Sample(id=str(sid), question_type=question_type, kind="mca", prompt="", target="", task=task,
                  error=error)


def cards_dir() -> Path:
    """The cards folder: $GASPPROBE_BENCHMARKS, else the packaged ``gaspprobe/benchmarking/cards/``."""
    env = os.environ.get("GASPPROBE_BENCHMARKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "cards"


def load_card(name_or_path: str | Path) -> BenchmarkCard:
    """Load a card by registry name (``vsibench``) or by path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        path = p
    else:
        from gaspprobe.benchmarking.registry import BENCHMARKS

        path = cards_dir() / BENCHMARKS.get(str(name_or_path))
        if not path.exists():
            raise ConfigError("benchmark card not found", path=path)
    data = load_file(path)
    card = from_dict(BenchmarkCard, data, where=path)
    card.path = str(path)
    from gaspprobe.benchmarking.registry import LOADERS

    if card.format not in LOADERS:
        raise ConfigError(f"format: unknown benchmark format {card.format!r}; known: {', '.join(LOADERS.names())}",
                          path=path)
    for kind in card.question_types.values():
        if kind not in ("mca", "na"):
            raise ConfigError(f"question_types: kind must be 'mca' or 'na', got {kind!r}", path=path)
    if card.prompt_variant not in card.prompt_variants:
        raise ConfigError(f"prompt_variant {card.prompt_variant!r} is not in prompt_variants", path=path)
    return card


#: The files of a bench run folder (shared by the runner, scoring, rescoring and stats).
PREDICTIONS = "predictions.jsonl"
SUMMARY = "summary.json"
SCORES = "scores.parquet"
