"""Where every benchmark leaves its result: ``<out>/<stem>.json`` and ``.md``, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.atomic import write_text


def write_report(out: Path, stem: str, record: dict[str, Any], markdown: str) -> None:
    """Write the JSON record and its Markdown rendering side by side, print the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / f"{stem}.json", json.dumps(record, indent=2) + "\n")
    write_text(out / f"{stem}.md", markdown)
    print(markdown)
    print(f"wrote {out / stem}.json and .md")
