"""Writers: one Document to a self-contained HTML page, Markdown with PNGs beside it,
and JSON with every table's raw numbers.

The HTML loads nothing: figures are base64 PNGs, the style is inline, fonts are the
reader's own, there is no script, and a Content-Security-Policy forbids any fetch.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.report.document import Code, Document, Note, Plot, Table, format_value, label

__all__ = ["figure_file", "render_html", "render_json", "render_markdown", "write_figures"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 margin:0 auto;max-width:1200px;padding:1.5rem 2rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.25rem;margin-top:2.2rem;
 border-bottom:1px solid #ddd;padding-bottom:.2rem} h3{font-size:1rem;margin:1.2rem 0 .4rem}
.subtitle{color:#555;margin-top:0} .reading{font-size:1.02rem;background:#f4f7fb;
 border-left:4px solid #0072B2;padding:.45rem .8rem;margin:.6rem 0 1rem}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.84rem}
th,td{border:1px solid #d6d6d6;padding:.22rem .5rem;text-align:right;vertical-align:top}
th{background:#f2f2f2} td.text,th.text{text-align:left}
img{max-width:100%;height:auto;display:block;margin:.4rem 0 1rem}
pre{background:#f6f6f6;padding:.6rem .8rem;overflow-x:auto;font-size:.85rem}
.note{color:#5a4a00;background:#fff8dc;padding:.35rem .7rem;border-left:4px solid #E69F00}
nav ol{columns:2;font-size:.92rem}
"""


def figure_file(plot: Plot) -> str:
    return f"{plot.name}.png"


def _is_text(frame: pd.DataFrame, column: str) -> bool:
    values = frame[column].dropna()
    return values.empty or not all(
        isinstance(v, int | float | np.integer | np.floating) for v in values
    )


def _html_table(table: Table) -> str:
    frame = table.shown()
    if frame.empty:
        return '<p class="note">No rows.</p>'
    text = {c: _is_text(frame, str(c)) for c in frame.columns}
    head = "".join(
        f'<th class="{"text" if text[c] else "num"}">{html.escape(label(str(c)))}</th>'
        for c in frame.columns
    )
    body = []
    for record in frame.to_dict("records"):
        cells = "".join(
            f'<td class="{"text" if text[c] else "num"}">'
            f"{html.escape(format_value(record[c], str(c)))}</td>"
            for c in frame.columns
        )
        body.append(f"<tr>{cells}</tr>")
    title = f"<h3>{html.escape(table.title)}</h3>" if table.title else ""
    return f'{title}<table data-name="{html.escape(table.name)}"><thead><tr>{head}</tr></thead>' + (
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def render_html(document: Document) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(document.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(document.title)}</h1>",
        f'<p class="subtitle">{html.escape(document.subtitle)}</p>',
        "<nav><ol>",
        *(f'<li><a href="#{s.key}">{html.escape(s.title)}</a></li>' for s in document.sections),
        "</ol></nav>",
    ]
    for section in document.sections:
        parts.append(f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>')
        parts.append(f'<p class="reading">{html.escape(section.reading)}</p>')
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append(_html_table(block))
            elif isinstance(block, Plot):
                data = base64.b64encode(block.png).decode("ascii")
                parts.append(
                    f'<img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}" '
                    f'data-name="{html.escape(block.name)}">'
                )
            elif isinstance(block, Note):
                parts.append(f'<p class="note">{html.escape(block.text)}</p>')
            elif isinstance(block, Code):
                parts.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> str:
    frame = table.shown()
    title = f"**{table.title}**\n\n" if table.title else ""
    if frame.empty:
        return f"{title}_No rows._"
    text = {c: _is_text(frame, str(c)) for c in frame.columns}
    head = "| " + " | ".join(_md_cell(label(str(c))) for c in frame.columns) + " |"
    rule = "|" + "".join(" --- |" if text[c] else " ---: |" for c in frame.columns)
    rows = [
        "| " + " | ".join(_md_cell(format_value(r[c], str(c))) for c in frame.columns) + " |"
        for r in frame.to_dict("records")
    ]
    return "\n".join([title + head, rule, *rows])


def render_markdown(document: Document) -> str:
    """Markdown for pull requests and wikis; figures link to PNG files beside it."""
    parts = [f"# {document.title}", "", f"_{document.subtitle}_", ""]
    parts += [f"{i}. [{s.title}](#{s.key})" for i, s in enumerate(document.sections, 1)]
    for section in document.sections:
        parts += [
            "",
            f'<a id="{section.key}"></a>',
            "",
            f"## {section.title}",
            "",
            f"> {section.reading}",
            "",
        ]
        for block in section.blocks:
            if isinstance(block, Table):
                parts += [_md_table(block), ""]
            elif isinstance(block, Plot):
                alt = block.alt.replace("]", ")").replace("[", "(")
                parts += [f"![{alt}]({figure_file(block)})", ""]
            elif isinstance(block, Note):
                parts += [f"_{block.text}_", ""]
            elif isinstance(block, Code):
                parts += ["```", block.text, "```", ""]
    return "\n".join(parts).rstrip() + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA:
        return None
    return value


def render_json(document: Document) -> str:
    """Every table's raw (unformatted) numbers, every figure's file, every note."""
    sections: dict[str, Any] = {}
    for section in document.sections:
        entry: dict[str, Any] = {
            "title": section.title,
            "reading": section.reading,
            "tables": {},
            "figures": [],
            "notes": [],
        }
        for block in section.blocks:
            if isinstance(block, Table):
                records = block.frame.to_dict("records")
                entry["tables"][block.name] = [
                    {str(k): _plain(v) for k, v in r.items()} for r in records
                ]
            elif isinstance(block, Plot):
                entry["figures"].append({"file": figure_file(block), "alt": block.alt})
            elif isinstance(block, Note):
                entry["notes"].append(block.text)
        sections[section.key] = entry
    data = {"title": document.title, "inputs": document.inputs, "sections": sections}
    return json.dumps(data, indent=2, default=str) + "\n"


def write_figures(document: Document, directory: Path) -> list[Path]:
    paths = []
    for section in document.sections:
        for block in section.blocks:
            if isinstance(block, Plot):
                path = directory / figure_file(block)
                path.write_bytes(block.png)
                paths.append(path)
    return paths
