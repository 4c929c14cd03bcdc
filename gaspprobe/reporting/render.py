"""Turn report sections (tables, figures, paragraphs) into one self-contained HTML file and a
Markdown file.

The HTML has everything inline: figures as base64 PNG ``data:`` URIs, the report's numbers as a
JSON ``<script type="application/json" id="gaspprobe-data">`` block, CSS in ``<style>``, and a
Content-Security-Policy that forbids any network request, so it opens anywhere, offline. A tiny
inline script records on ``<body data-images-loaded="k/n">`` how many images decoded (the Chromium
test reads it). The Markdown has the same tables and links the PNGs beside it.

Every string that comes from data (model names, paths, task names) is HTML-escaped here; callers
pass plain text. Sections marked ``kind="paper"`` are boxed and badged as the paper's numbers.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union


@dataclass
class Table:
    """A table of already formatted cells (strings)."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class FigureRef:
    """A figure saved beside the report: ``png`` (and ``pdf``) relative to the report folder."""

    title: str
    png: str
    caption: str = ""
    pdf: str | None = None


Item = Union[Table, FigureRef, str]


@dataclass
class Section:
    title: str
    items: list[Item] = field(default_factory=list)
    kind: str = "measured"   # "measured" | "paper" | "info" | "warning"
    anchor: str = ""


_CSS = """
:root { --fg:#1b1f24; --muted:#5b6470; --line:#d9dde3; --paper:#8b0000; --paperbg:#fbf3f3; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       color: var(--fg); margin: 0; background: #fff; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.sub { color: var(--muted); margin: 0 0 12px; }
nav { margin: 8px 0 8px; font-size: 13px; }
nav a { margin-right: 12px; color: #1f5fa8; text-decoration: none; }
table { border-collapse: collapse; margin: 6px 0 4px; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: #f4f6f8; font-weight: 600; white-space: normal; vertical-align: bottom; min-width: 56px; }
th:first-child, td:first-child, th.text { text-align: left; }
td.text { text-align: left; white-space: normal; max-width: 520px; }
.note { color: var(--muted); font-size: 12.5px; margin: 2px 0 14px; max-width: 900px; }
.tablewrap { overflow-x: auto; }
section.paper { background: var(--paperbg); border-left: 4px solid var(--paper); padding: 4px 16px 10px;
                margin-top: 28px; }
section.paper h2 { border-bottom-color: #e8c9c9; }
.badge { display: inline-block; font-size: 11px; font-weight: 700; letter-spacing: .04em; color: #fff;
         background: var(--paper); border-radius: 3px; padding: 1px 6px; margin-left: 8px;
         vertical-align: middle; }
section.warning { background: #fff8e6; border-left: 4px solid #c98a00; padding: 4px 16px 10px; }
.figs { display: flex; flex-wrap: wrap; gap: 18px 26px; }
figure { margin: 0; flex: 0 1 480px; }
figure.wide { flex-basis: 1000px; }
figure img { width: 100%; height: auto; border: 1px solid var(--line); background: #fff; }
figcaption { font-size: 12.5px; color: var(--muted); margin-top: 4px; }
code { font-size: 12px; background: #f4f6f8; padding: 0 3px; border-radius: 3px; }
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
});
"""

# No network, ever: only inline styles/scripts and data: images are allowed.
_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _is_text(cell: str) -> bool:
    s = cell.strip().replace("%", "").replace("+", "").replace("−", "-").replace("–", "")
    if not s:
        return False
    try:
        float(s.split(" ")[0])
        return False
    except ValueError:
        return True


def _text_columns(t: Table) -> list[bool]:
    """A column whose cells are all words (not numbers) is left-aligned, header included."""
    return [i > 0 and bool(t.rows) and all(_is_text(str(r[i])) or str(r[i]).strip() in ("", "–")
                                           for r in t.rows) for i in range(len(t.columns))]


def table_html(t: Table) -> str:
    text_col = _text_columns(t)
    head = "".join(("<th class=\"text\">" if text_col[i] else "<th>") + f"{_e(c)}</th>"
                   for i, c in enumerate(t.columns))
    body = []
    for row in t.rows:
        cells = []
        for i, c in enumerate(row):
            cls = ' class="text"' if i > 0 and (text_col[i] or _is_text(str(c))) else ""
            cells.append(f"<td{cls}>{_e(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    out = [f"<h3>{_e(t.title)}</h3>" if t.title else "",
           f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead>'
           f"<tbody>{''.join(body)}</tbody></table></div>"]
    if t.note:
        out.append(f'<p class="note">{_e(t.note)}</p>')
    return "\n".join(out)


def figure_html(f: FigureRef, root: Path) -> str:
    raw = (root / f.png).read_bytes()
    data = base64.b64encode(raw).decode("ascii")
    # PNG IHDR: width is the big-endian uint32 at byte 16. Figures wider than one paper column
    # (e.g. the multi-panel loss curves) get a full row.
    wide = " wide" if len(raw) > 24 and int.from_bytes(raw[16:20], "big") > 900 else ""
    cap = _e(f.caption)
    return (f'<figure class="fig{wide}"><img alt="{_e(f.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{_e(f.title)}.</b> {cap}</figcaption></figure>")


def render_html(title: str, subtitle: str, sections: list[Section], data: dict, root: Path) -> str:
    """The whole report as one HTML string.

    Args:
        title, subtitle: page heading and the line under it (plain text).
        sections: in order; ``FigureRef`` paths are read from ``root``.
        data: the report's numbers, embedded as JSON (``id="gaspprobe-data"``).
        root: the folder that holds the figures (the report being built).
    """
    nav = " ".join(f'<a href="#{_e(s.anchor)}">{_e(s.title)}</a>' for s in sections if s.anchor)
    parts = []
    for s in sections:
        badge = '<span class="badge">THE PAPER\'S NUMBERS, NOT MEASURED HERE</span>' \
            if s.kind == "paper" else ""
        anchor = f' id="{_e(s.anchor)}"' if s.anchor else ""
        body, figs = [], []
        for it in s.items:
            if isinstance(it, FigureRef):
                figs.append(figure_html(it, root))
                continue
            if figs:
                body.append('<div class="figs">' + "".join(figs) + "</div>")
                figs = []
            if isinstance(it, Table):
                body.append(table_html(it))
            else:
                body.append(f"<p>{_e(it)}</p>")
        if figs:
            body.append('<div class="figs">' + "".join(figs) + "</div>")
        parts.append(f'<section class="{_e(s.kind)}"{anchor}><h2>{_e(s.title)}{badge}</h2>'
                     + "\n".join(body) + "</section>")
    # "</" inside a <script> would end it early; JSON allows the escaped form.
    blob = json.dumps(data, default=str, allow_nan=False).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="gaspprobe">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>{_e(title)}</h1>
<p class="sub">{_e(subtitle)}</p>
<nav>{nav}</nav>
{chr(10).join(parts)}
</main>
<script type="application/json" id="gaspprobe-data">{blob}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def _md_cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def table_markdown(t: Table) -> str:
    lines = [f"### {t.title}", ""] if t.title else []
    lines.append("| " + " | ".join(_md_cell(c) for c in t.columns) + " |")
    text_col = _text_columns(t)
    lines.append("|" + "|".join(":---" if i == 0 or text_col[i] else "---:"
                                for i in range(len(t.columns))) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    if t.note:
        lines += ["", f"*{t.note}*"]
    return "\n".join(lines) + "\n"


def render_markdown(title: str, subtitle: str, sections: list[Section]) -> str:
    """The same report as Markdown; figures are linked as PNGs beside it (PDF linked too)."""
    out = [f"# {title}", "", subtitle, ""]
    for s in sections:
        heading = s.title + (" (the paper's numbers, not measured here)" if s.kind == "paper" else "")
        out += [f"## {heading}", ""]
        for it in s.items:
            if isinstance(it, Table):
                out.append(table_markdown(it))
            elif isinstance(it, FigureRef):
                pdf = f" ([PDF]({it.pdf}))" if it.pdf else ""
                out += [f"![{it.title}]({it.png})", "", f"*{it.title}.* {it.caption}{pdf}", ""]
            else:
                out += [str(it), ""]
    return "\n".join(out).rstrip() + "\n"
