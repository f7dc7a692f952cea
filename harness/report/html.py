"""The report as one self-contained HTML page: figures inline as base64 PNG, sortable tables, no requests.

The page is plain HTML with a few lines of inline CSS and JavaScript (click a column header to
sort; numbers sort as numbers), so it opens from a file, from an e-mail attachment or from a CI
artifact with nothing else beside it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Sequence

from harness.report.tables import Renderable

#: What ``harness report`` writes: report.md beside figures/*.png, or this module's one-file report.html.
REPORT_FORMATS = ("markdown", "html")


@dataclass
class Group:
    """One section of the page: a group of runs (a feature size) with its figures and tables."""

    title: str
    anchor: str
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, PNG file)
    tables: list[Renderable] = field(default_factory=list)


CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 0 24px 48px; color: #1d232a; }
h1 { margin: 28px 0 4px; font-size: 26px; } h2 { margin-top: 40px; border-bottom: 2px solid #d9dee3; padding-bottom: 4px; }
h3 { margin: 26px 0 8px; font-size: 17px; }
nav a { margin-right: 14px; } .meta { color: #56606b; margin: 0 0 6px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 8px; font-size: 13.5px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d9dee3; padding: 4px 9px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f1f4f7; cursor: pointer; user-select: none; position: sticky; top: 0; }
th[data-dir="asc"]::after { content: " \\25B2"; } th[data-dir="desc"]::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafbfc; } tbody tr:hover { background: #eef5ff; }
td.paper, th.paper { background: #fff8e6; }
ul.notes { color: #3e4852; font-size: 13.5px; margin-top: 4px; } pre { background: #f5f7f9; padding: 8px; overflow-x: auto; }
figure { margin: 14px 0 22px; } figure img { max-width: 100%; height: auto; border: 1px solid #e3e7eb; }
figcaption { color: #56606b; font-size: 13.5px; margin-top: 4px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 12px; }
"""

# Click a header to sort by that column; cells starting with a number sort numerically, "—" last.
SCRIPT = """
(function () {
  function key(text) {
    var m = text.replace(/\\u2212/g, "-").replace(/,/g, "").match(/^\\s*[<>]?\\s*([+-]?\\d+(\\.\\d+)?(e[+-]?\\d+)?)/i);
    return m ? parseFloat(m[1]) : null;
  }
  function compare(a, b) {
    var x = key(a), y = key(b);
    if (x !== null && y !== null) return x - y;
    if (x !== null) return -1;
    if (y !== null) return 1;
    return a.localeCompare(b);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, col) {
      th.title = "sort by this column";
      th.addEventListener("click", function () {
        var dir = th.getAttribute("data-dir") === "asc" ? "desc" : "asc";
        table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", dir);
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r, s) {
          var c = compare(r.cells[col].textContent, s.cells[col].textContent);
          return dir === "asc" ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode("ascii")


def table_html(t: Renderable) -> str:
    headers = t.headers()
    paper = [("paper" in h.lower()) for h in headers]
    head = "".join(f'<th{" class=paper" if p else ""}>{escape(h)}</th>' for h, p in zip(headers, paper))
    body = "".join("<tr>" + "".join(f'<td{" class=paper" if p else ""}>{escape(str(c))}</td>' for c, p in zip(row, paper)) + "</tr>"
                   for row in t.display_rows())
    parts = [f"<h3>{escape(t.title)}</h3>", f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
             f"<tbody>{body}</tbody></table></div>"]
    notes = t.notes()
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    cmds = t.commands()
    if cmds:
        parts.append(f"<p>Missing runs ({len(cmds)}), produced by:</p><pre>{escape(chr(10).join(cmds))}</pre>")
    return "\n".join(parts)


def figure_html(caption: str, png: Path) -> str:
    return (f'<figure><img src="{data_uri(png)}" alt="{escape(png.stem)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def page(title: str, meta: Sequence[str], tables: Sequence[Renderable], groups: Sequence[Group], notes: Sequence[str]) -> str:
    """The whole document."""
    nav = ['<a href="#tables">Tables</a>'] + [f'<a href="#{g.anchor}">{escape(g.title)}</a>' for g in groups]
    if notes:
        nav.append('<a href="#notes">Notes</a>')
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{escape(title)}</h1>", *[f'<p class="meta">{escape(m)}</p>' for m in meta],
           f"<nav>{' '.join(nav)}</nav>", '<h2 id="tables">Tables</h2>', *[table_html(t) for t in tables]]
    for g in groups:
        out.append(f'<h2 id="{escape(g.anchor)}">{escape(g.title)}</h2>')
        out += [table_html(t) for t in g.tables]
        wide = [f for f in g.figures if not f[0].startswith("Confusion")]
        confusion = [f for f in g.figures if f[0].startswith("Confusion")]
        out += [figure_html(c, p) for c, p in wide]
        if confusion:
            out.append("<h3>Confusion matrices (official evaluate clips, summed over seeds)</h3>")
            out.append('<div class="grid">' + "".join(figure_html(c, p) for c, p in confusion) + "</div>")
        if not g.figures and not g.tables:
            out.append("<p>No stored runs in this group.</p>")
    if notes:
        out += ['<h2 id="notes">Notes</h2>', '<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>"]
    out += [f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(out) + "\n"
