"""``report(runs, out)``: the comparison report from any mix of probe, train and bench runs.

Start here. Three seams, one module each:

1. **collect**: :func:`gaspprobe.reporting.runs.load_runs` (discover and validate run folders;
   one-line ``DataError`` naming the folder for anything wrong), then
   :func:`gaspprobe.reporting.collect.collect` (tidy DataFrames of the numbers the runs computed;
   nothing re-derived) and the paired base -> GASP benchmark comparisons
   (:func:`gaspprobe.benchmarking.stats.compare_runs`);
2. **present**: :mod:`gaspprobe.reporting.present` (tables, sections) and
   :mod:`gaspprobe.reporting.plots` (seaborn figures; the paper-layout figure comes from
   :mod:`gaspprobe.probing.plots`);
3. **publish**: :mod:`gaspprobe.reporting.publish` (HTML and Markdown through the jinja2 templates
   of ``reports/templates/``, ``report.json``) into a staged run of the run kernel
   (:func:`gaspprobe.runs.open_run`, kind ``report``): everything is written into a hidden temp
   folder beside ``out`` and swapped in only when complete (manifest last), so a failed build
   never replaces a good report.

``out`` must be empty, missing, or an earlier report (always rebuilt: the runs it reads may have
changed); any other folder is refused with one line, and so is an ``out`` that is, or holds, one of
the runs. The paper's numbers live only in the section badged as the paper's and in figure lines
labelled "paper: ...".
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterable

from gaspprobe import io
from gaspprobe.errors import DataError, GaspError
from gaspprobe.reporting import present, publish
from gaspprobe.reporting.collect import ReportData, collect, num
from gaspprobe.reporting.runs import RunSet, load_runs

__all__ = ["report", "collect", "paired_rows", "ReportData"]


def report(runs: Any, out: str | Path, *, title: str | None = None, allow_mismatch: bool = False,
           paper: bool = True, formats: Iterable[str] = ("png", "pdf"), label: str | None = None) -> Path:
    """Write the comparison report for ``runs`` into ``out``.

    Args:
        runs: a run folder, a folder holding run folders (a loop output), or a list of them.
            Result objects with an ``out``/``run_dir`` attribute are accepted too.
        out: the report folder; created, or replaced if it holds an earlier report.
        title: page title (default "gaspprobe report").
        allow_mismatch: report runs of incompatible recipes anyway, with a warning section.
        paper: draw/list the GASP paper's reported numbers (always labelled as the paper's).
        formats: figure formats; "png" is always written (the HTML inlines it).
        label: recorded as the report manifest's ``model_label`` (the run kernel's convention).
    Returns:
        The path of ``out/report.html``.
    Raises:
        DataError: bad or incompatible runs (one line naming the folder), or an ``out`` that is
            an unrelated non-empty folder or a run folder.
    """
    from gaspprobe.runs import open_run

    out = Path(out).resolve()  # "." or "x/.." have no usable name to rename
    runset = load_runs(runs, allow_mismatch=allow_mismatch)
    _check_out(out, runset)
    formats = tuple(dict.fromkeys(("png",) + tuple(formats)))
    title = title or "gaspprobe report"
    config = {"runs": [str(r.path) for r in runset.runs], "paper": paper, "formats": list(formats),
              "title": title}
    # force: a report is always rebuilt (the runs it reads may have been redone in place).
    with open_run(out, "report", config, publish="staged", label=label, force=True) as run:
        data = collect(runset, paired=paired_rows(runset))
        _build(runset, data, run.dir, title=title, paper=paper, formats=formats)
        run.complete(models={m.name: m.model for m in runset.models.values()},
                     warnings=data.warnings)
    return out / "report.html"


def _check_out(out: Path, runset: RunSet) -> None:
    """``out`` must not be a run the report reads, nor hold one (the kernel refuses the rest)."""
    for r in runset.runs:
        rp = r.path.resolve()
        if out == rp or out in rp.parents:
            raise DataError(f"--out would replace run folder {r.path}; choose another --out",
                            path=out)


def paired_rows(runset: RunSet) -> list[tuple]:
    """Paired comparisons of each base -> GASP pair on each benchmark both ran (the bench
    statistics' paired bootstrap + McNemar), as rows for :func:`collect`; a benchmark whose card
    cannot be loaded here gets no paired rows (its deltas are then plain differences)."""
    from gaspprobe.benchmarking.stats import compare_runs

    bench = {}
    for r in runset.of_kind("bench"):
        bench[(r.model_key, r.benchmark)] = r
    rows = []
    for bk, gk in runset.pairs:
        for (mk, b), rb in bench.items():
            rg = bench.get((gk, b))
            if mk != bk or rg is None:
                continue
            old = [r.path for r in (rb, rg) if r.table["task"].isna().any()]
            if old:  # written before scores.parquet had a task per row (bench table v0)
                runset.warnings.append(f"{b}: no paired interval for {runset.name(bk)} -> "
                                       f"{runset.name(gk)}: {old[0]}/scores.parquet has no task "
                                       "per question (an older bench run; rerun it)")
                continue
            try:
                res = compare_runs(rb.path, rg.path, seed=0)
            except GaspError as e:
                runset.warnings.append(f"{b}: no paired interval for {runset.name(bk)} -> "
                                       f"{runset.name(gk)} ({e})")
                continue
            items = [("overall", res["overall"])] + list(res["tasks"].items())
            for task, row in items:
                rows.append((b, runset.name(bk), runset.name(gk), str(task), num(row.get("delta")),
                             num(row.get("delta_low")), num(row.get("delta_high")),
                             bool(row.get("significant")), num(row.get("mcnemar_p"))))
    return rows


def _paper_figure(runset: RunSet, formats: tuple[str, ...]):
    """A callable ``draw(figdir) -> {format: path, "left_out": [names]}`` drawing the GASP paper's analysis figure
    (:func:`gaspprobe.probing.plots.paper_figure`) for every probe run of the report: one row per
    base model with the GASP models trained from it, then one row for the other probe runs; None
    when there is no probe run."""
    from gaspprobe.tables import ProbeSummary

    probes, empty = {}, []
    for r in runset.of_kind("probe"):
        # a run with no match at all (n = 0 everywhere) has no curve to draw: left out and named
        if math.isfinite(ProbeSummary.from_dict(r.summary).peak_accuracy):
            probes[r.model_key] = r
        else:
            empty.append(runset.name(r.model_key))
    if not probes:
        return None

    def draw(figdir: Path) -> dict:
        from gaspprobe.probing.plots import paper_figure

        groups: dict[str, list] = {}
        done: set[str] = set()
        for bk, gk in runset.pairs:
            for k in (bk, gk):
                if k in probes and k not in done:
                    groups.setdefault(runset.name(bk), []).append(
                        (runset.name(k), probes[k].summary))
                    done.add(k)
        rest = [(runset.name(k), r.summary) for k, r in probes.items() if k not in done]
        if rest:
            groups["other models" if groups else rest[0][0]] = rest
        paths = paper_figure(groups, figdir, stem="paper_figure")
        out: dict = {"left_out": empty}
        for p in map(Path, paths):
            fmt = p.suffix.lstrip(".")
            if fmt in formats:
                out[fmt] = p
            else:  # the figure function writes PNG and PDF; keep what was asked for
                p.unlink(missing_ok=True)
        return out

    return draw


def _build(runset: RunSet, data: ReportData, root: Path, *, title: str, paper: bool,
           formats: tuple[str, ...]) -> None:
    top, figs = present.figures(data, runset, root / "figures", paper=paper, formats=formats,
                                paper_figure=_paper_figure(runset, formats))
    sections = present.build_sections(data, runset, top, figs, paper=paper)
    created = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    counts = {k: len(runset.of_kind(k)) for k in ("probe", "train", "bench")}
    subtitle = (f"{len(runset.models)} model(s); {counts['probe']} probe, {counts['train']} train, "
                f"{counts['bench']} bench run(s); generated {created} by gaspprobe.")
    publish.write_report(root, title, subtitle, sections, payload(data, runset, paper))


def _records(df) -> list[dict]:
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in row.items()} for row in df.to_dict(orient="records")]


def payload(data: ReportData, runset: RunSet, paper: bool) -> dict:
    """All the report's numbers, for the inline JSON block and report.json."""
    out = {
        "measured": {k: _records(getattr(data, k)) for k in
                     ("probe", "corr", "gaps", "depth", "overall", "bench", "consistency",
                      "baselines", "paired")},
        "models": [dict(name=m.name, model=m.model, role=m.role,
                        base=runset.name(m.base_key) if m.base_key else None, color=m.color)
                   for m in runset.models.values()],
        "pairs": [[runset.name(b), runset.name(g)] for b, g in runset.pairs],
        "runs": [dict(path=str(r.path), kind=r.kind, model=r.model) for r in runset.runs],
        "warnings": data.warnings,
    }
    if paper:
        out["paper_reference"] = [dict(claim=c, value=v, refers_to=t)
                                  for c, v, t in present.PAPER_REFERENCE]
    return io._finite(out)
