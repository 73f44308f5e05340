"""A tiny document model rendered twice, as Markdown and as one self-contained HTML page; cell formats.

The report builds a :class:`Document` of headings, paragraphs, tables, images, links and code, then
renders it both ways. HTML escapes every piece of text and embeds images; Markdown escapes cells.
"""

from __future__ import annotations

import base64
import html
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

_CSS = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;"
    "padding:0 1em;color:#222;line-height:1.45}"
    "table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
    "th{background:#f2f2f2}img{max-width:100%;border:1px solid #ddd}"
    "pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.85em}h2{margin-top:1.6em;"
    "border-bottom:1px solid #ddd}"
    "details{margin:.4em 0 1.2em}summary{cursor:pointer;color:#444}"
)


class Document:
    """Blocks in order; :meth:`markdown` and :meth:`html` render the same content."""

    def __init__(self):
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", text))

    def table(self, headers: list[str], rows: list[list[Any]]):
        self.blocks.append(("table", headers, rows))

    def img(self, path: Path, rel: str, alt: str):
        self.blocks.append(("img", path, rel, alt))

    def link(self, href: str, text: str, before: str = ""):
        self.blocks.append(("link", href, text, before))

    def code(self, text: str):
        self.blocks.append(("code", text))

    @contextmanager
    def folded(self, summary: str):
        """The blocks added inside fold under ``summary`` (``<details>``, closed; opened by a click)."""
        self.blocks.append(("fold", summary))
        yield self
        self.blocks.append(("end",))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out.append("#" * b[1] + " " + _md_inline(b[2]))
            elif kind == "p":
                out.append(_md_inline(b[1]))
            elif kind == "table":
                headers, rows = b[1], b[2]
                out.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
                out.append("|" + "|".join("---" for _ in headers) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            elif kind == "img":
                out.append(f"![{_md_inline(b[3])}]({b[2]})")
            elif kind == "link":
                out.append(f"{_md_inline(b[3])}[{_md_inline(b[2])}]({b[1]})")
            elif kind == "code":
                fence = "````" if "```" in b[1] else "```"
                out.append(f"{fence}\n{b[1]}\n{fence}")
            elif kind == "fold":  # raw HTML that CommonMark and GitHub pass through
                out.append(f"<details><summary>{_md_inline(b[1])}</summary>")
            elif kind == "end":
                out.append("</details>")
            out.append("")
        return "\n".join(out)

    def html(self, title: str) -> str:
        body = [_html_block(b) for b in self.blocks]
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n"
        )


def _html_block(b: tuple) -> str:
    kind = b[0]
    if kind == "h":
        return f'<h{b[1]} id="{_slug(b[2])}">{html.escape(b[2])}</h{b[1]}>'
    if kind == "p":
        return f"<p>{html.escape(b[1])}</p>"
    if kind == "table":
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1])
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(_text(c))}</td>" for c in row) + "</tr>" for row in b[2])
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if kind == "img":
        data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
        return f'<p><img alt="{html.escape(b[3], quote=True)}" src="data:image/png;base64,{data}"></p>'
    if kind == "link":
        return f'<p>{html.escape(b[3])}<a href="{html.escape(b[1], quote=True)}">{html.escape(b[2])}</a></p>'
    if kind == "fold":
        return f"<details><summary>{html.escape(b[1])}</summary>"
    if kind == "end":
        return "</details>"
    return f"<pre><code>{html.escape(b[1])}</code></pre>"


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return str(value)


def _md_inline(text: str) -> str:
    """One line of text that a Markdown renderer shows literally: HTML-significant characters as entities."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_cell(value: Any) -> str:
    text = _md_inline(_text(value))
    for ch in ("\\", "|", "*", "_", "`", "[", "]"):
        text = text.replace(ch, "\\" + ch)
    return text


def pct(value: Any) -> str:
    """An accuracy or share as the report prints it: ``"85.3%"`` (``"–"`` when missing)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{100 * float(value):.1f}%"


def share(part: float, whole: float) -> str:
    """``pct(part / whole)``, ``"–"`` when ``whole`` is 0."""
    return pct(part / whole if whole else np.nan)


def fmt_float(value: float) -> str:
    """Three decimals, ``"–"`` when missing."""
    return "–" if value is None or not np.isfinite(value) else f"{value:.3f}"


def mix(counts: dict[str, int]) -> str:
    """``"a 3, b 2"`` of the non-zero counts."""
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v)
