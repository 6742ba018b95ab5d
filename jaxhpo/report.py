"""One self-contained HTML page of tables and figures, to open in a browser or send as one file.

Figures (matplotlib ``Figure`` objects, as ``jaxhpo.plots`` returns them, or
PNG files already written) are embedded as base64 PNG images, so the page
needs nothing next to it. Only the standard library is imported here;
figures are rendered by their own ``savefig``.

Example:
    >>> import os, tempfile
    >>> from jaxhpo.report import Table, write_html
    >>> path = os.path.join(tempfile.mkdtemp(), "report.html")
    >>> t = Table("Test split", ["model", "accuracy"], [["fused", 0.99], ["best single", 0.98]])
    >>> write_html(path, "Digits", tables=[t]) == path
    True
    >>> "<td>0.9900</td>" in open(path).read()
    True
"""

from __future__ import annotations

import base64
import html
import io
import numbers
import os
from typing import Any, Mapping, NamedTuple, Optional, Sequence

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 4px 12px; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
figure { display: inline-block; margin: 1em; }
figure img { max-width: 500px; }
"""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Table(NamedTuple):
    """A table for ``write_html``.

    Attributes:
        caption: shown above the table.
        header: column names.
        rows: one sequence of cells per row; real numbers are printed with
            ``float_format``, anything else with ``str``.
        float_format: format of real numbers (default four decimals).
    """

    caption: str
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    float_format: str = "{:.4f}"


def _cell(value: Any, float_format: str) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return html.escape(float_format.format(value))
    return html.escape(str(value))


def _table_html(table: Table) -> str:
    width = len(table.header)
    for i, row in enumerate(table.rows):
        if len(row) != width:
            raise ValueError(f"table {table.caption!r}: row {i} has {len(row)} cells for {width} columns: {row!r}")
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v, table.float_format)}</td>" for v in row) + "</tr>"
                   for row in table.rows)
    return f"<table><caption>{html.escape(table.caption)}</caption><thead><tr>{head}</tr></thead>" \
           f"<tbody>{body}</tbody></table>"


def _png_bytes(name: str, figure: Any) -> bytes:
    """The PNG image of ``figure``: a PNG file's bytes as they are, or a Figure rendered."""
    if isinstance(figure, (str, os.PathLike)):
        with open(figure, "rb") as f:
            data = f.read()
        if not data.startswith(_PNG_SIGNATURE):
            raise ValueError(f"figures[{name!r}]: {os.fspath(figure)!r} is not a PNG file; pass a PNG file's path "
                             f"or a matplotlib Figure")
        return data
    if not hasattr(figure, "savefig"):
        raise ValueError(f"figures[{name!r}] must be a matplotlib Figure (it has no savefig) or a PNG file's path, "
                         f"got {type(figure).__name__}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _figure_html(name: str, figure: Any) -> str:
    data = base64.b64encode(_png_bytes(name, figure)).decode("ascii")
    alt = html.escape(name)
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"><figcaption>{alt}</figcaption></figure>'


def write_html(
    path: str,
    title: str,
    *,
    tables: Sequence[Table] = (),
    figures: Optional[Mapping[str, Any]] = None,
    notes: Sequence[str] = (),
) -> str:
    """Writes one HTML page holding ``tables``, ``notes`` and ``figures``; returns ``path``.

    Args:
        path: the file to write (overwritten).
        title: the page title and heading.
        tables: ``Table`` objects, in order.
        figures: ``{caption: figure}``, embedded as PNG images; a figure is a
            matplotlib ``Figure`` (rendered here) or the path of a PNG file
            already written (embedded as it is, not drawn again).
        notes: paragraphs of plain text shown under the tables.
    """
    for i, t in enumerate(tables):
        if not isinstance(t, Table):
            raise ValueError(f"tables[{i}] must be a jaxhpo.report.Table, got {type(t).__name__}")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [_table_html(t) for t in tables]
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    parts += [_figure_html(name, fig) for name, fig in (figures or {}).items()]
    parts.append("</body></html>\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(parts))
    return path
