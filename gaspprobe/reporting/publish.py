"""Publish: render the report's sections with the jinja2 templates and write the report folder.

The templates live in the top-level ``reports/templates/`` folder of the checkout and ship in the
package as ``gaspprobe.report_templates`` (:func:`templates_dir` finds them either way):

- ``report.html.j2``: one self-contained HTML file: figures inline as base64 PNG ``data:`` URIs,
  the report's numbers as a JSON ``<script type="application/json" id="gaspprobe-data">`` block,
  CSS (``report.css``) and a tiny script (``report.js``, which records on ``<body
  data-images-loaded="k/n">`` how many images decoded) inline, and a Content-Security-Policy that
  forbids any network request, so it opens anywhere, offline. Autoescaped: every string from data
  (model names, paths, task names) is HTML-escaped.
- ``report.md.j2``: the same tables as Markdown; figures linked as PNGs (and PDFs) beside it.

:func:`write_report` writes ``report.html``, ``report.md`` and ``report.json`` into a folder (the
staged folder of the run kernel; :func:`gaspprobe.reporting.report.report` owns the run).
"""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import Any

from gaspprobe import io
from gaspprobe.errors import DataError
from gaspprobe.reporting.present import FigureRef, Section, Table, is_text

#: The templates as a package (the lead maps ``reports/templates`` to this name in pyproject).
TEMPLATES_PACKAGE = "gaspprobe.report_templates"
TEMPLATE_FILES = ("report.html.j2", "report.md.j2", "report.css", "report.js")


def templates_dir() -> Any:
    """Where the report templates are: the installed package data ``gaspprobe.report_templates``
    (a :class:`importlib.resources.abc.Traversable`), else the checkout's ``reports/templates/``.

    Raises:
        DataError: neither holds the templates (a broken install), naming the checkout path.
    """
    from importlib import resources

    try:
        root = resources.files(TEMPLATES_PACKAGE)
        if all(root.joinpath(f).is_file() for f in TEMPLATE_FILES):
            return root
    except (ModuleNotFoundError, TypeError):
        pass
    checkout = Path(__file__).resolve().parents[2] / "reports" / "templates"
    missing = [f for f in TEMPLATE_FILES if not (checkout / f).is_file()]
    if missing:
        raise DataError(f"report templates {missing} not found in package {TEMPLATES_PACKAGE} nor "
                        "here; reinstall gaspprobe", path=checkout)
    return checkout


@functools.lru_cache(maxsize=None)
def _env(kind: str):
    import jinja2

    root = templates_dir()

    def load(name: str):
        f = root.joinpath(name)
        if not f.is_file():
            return None
        return f.read_text(encoding="utf-8"), None, lambda: True

    env = jinja2.Environment(loader=jinja2.FunctionLoader(load), autoescape=kind == "html",
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["mdcell"] = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    return env


# --------------------------------------------------------------------------- view models
def _table_view(t: Table) -> dict:
    text_col = t.text_columns()
    rows = [[{"v": str(c), "text": i > 0 and (text_col[i] or is_text(str(c)))}
             for i, c in enumerate(r)] for r in t.rows]
    return {"type": "table", "title": t.title, "columns": list(t.columns), "rows": rows,
            "text_col": text_col, "note": t.note,
            "align": ["left" if i == 0 or text_col[i] else "right" for i in range(len(t.columns))]}


def _figure_view(f: FigureRef, root: Path | None) -> dict:
    view = {"title": f.title, "png": f.png, "pdf": f.pdf, "caption": f.caption}
    if root is not None:
        raw = (root / f.png).read_bytes()
        view["data"] = base64.b64encode(raw).decode("ascii")
        # PNG IHDR: width is the big-endian uint32 at byte 16. Figures wider than one paper
        # column (the multi-panel paper figure, the loss curves) get a full row.
        view["wide"] = len(raw) > 24 and int.from_bytes(raw[16:20], "big") > 900
    return view


def _section_views(sections: list[Section], root: Path | None) -> list[dict]:
    """Sections as template data; consecutive figures are grouped into one row of figures."""
    out = []
    for s in sections:
        blocks: list[dict] = []
        for it in s.items:
            if isinstance(it, FigureRef):
                if not blocks or blocks[-1]["type"] != "figures":
                    blocks.append({"type": "figures", "figures": []})
                blocks[-1]["figures"].append(_figure_view(it, root))
            elif isinstance(it, Table):
                blocks.append(_table_view(it))
            else:
                blocks.append({"type": "text", "text": str(it)})
        out.append({"title": s.title, "kind": s.kind, "anchor": s.anchor, "blocks": blocks})
    return out


# --------------------------------------------------------------------------- rendering
def render_html(title: str, subtitle: str, sections: list[Section], data: dict, root: Path) -> str:
    """The whole report as one HTML string.

    Args:
        title, subtitle: page heading and the line under it (plain text).
        sections: in order; ``FigureRef`` paths are read from ``root``.
        data: the report's numbers, embedded as JSON (``id="gaspprobe-data"``).
        root: the folder that holds the figures (the report being built).
    """
    from markupsafe import Markup

    # "</" inside a <script> would end it early; JSON allows the escaped form.
    blob = json.dumps(data, default=str, allow_nan=False).replace("</", "<\\/")
    return _env("html").get_template("report.html.j2").render(
        title=title, subtitle=subtitle, sections=_section_views(sections, root), data=Markup(blob))


def render_markdown(title: str, subtitle: str, sections: list[Section]) -> str:
    """The same report as Markdown; figures are linked as PNGs beside it (PDF linked too)."""
    text = _env("md").get_template("report.md.j2").render(
        title=title, subtitle=subtitle, sections=_section_views(sections, None))
    return text.rstrip() + "\n"


def write_report(root: Path, title: str, subtitle: str, sections: list[Section], payload: dict) -> None:
    """Write ``report.html``, ``report.md`` and ``report.json`` into ``root`` (figures already there)."""
    io.atomic_write_text(root / "report.html", render_html(title, subtitle, sections, payload, root))
    io.atomic_write_text(root / "report.md", render_markdown(title, subtitle, sections))
    io.atomic_write_json(root / "report.json", payload)
