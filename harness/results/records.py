"""The one reader of a stored record (``config.json``, ``summary.json``, ``preprocessing.json``, …).

Records are written atomically, but a disk can still hand back a truncated file (a copy cut
short, a file system repaired after a crash) or one edited by hand. Every reader goes through
:func:`load_record`, which checks what a reader then trusts: a regular file of sane size, valid
JSON, an object at the top, and the keys the caller needs with the JSON types it needs. Anything
else is a one-line :class:`~harness.errors.DataError` naming the file, never a traceback from
deep inside the reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from harness.errors import DataError
from harness.textfile import MIB, read_text

#: Records hold settings, metrics and per-band statistics: far below this.
RECORD_LIMIT = 64 * MIB

_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true or false", type(None): "null"}


def _json_name(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def load_record(path: str | Path, what: str = "run record",
                required: Mapping[str, type | tuple[type, ...]] | None = None) -> dict[str, Any]:
    """The JSON object in ``path``; ``required`` maps keys that must be present to their type(s)."""
    path = Path(path)
    text = read_text(path, what=what, limit=RECORD_LIMIT, error=DataError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        cut = " (truncated?)" if exc.pos >= len(text.rstrip()) else ""
        raise DataError(f"damaged {what}: not valid JSON{cut}: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                        path) from None
    except RecursionError:
        raise DataError(f"damaged {what}: nested too deeply", path) from None
    if not isinstance(data, dict):
        raise DataError(f"damaged {what}: expected a JSON object, found {_json_name(data)}", path)
    for key, types in (required or {}).items():
        if key not in data:
            raise DataError(f"damaged {what}: no {key!r}", path)
        if not isinstance(data[key], types) or (isinstance(data[key], bool) and bool not in _as_tuple(types)):
            want = " or ".join(dict.fromkeys(_JSON_NAMES.get(t, t.__name__) for t in _as_tuple(types)))
            raise DataError(f"damaged {what}: {key!r} is {_json_name(data[key])}, expected {want}", path)
    return data


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def load_optional(path: str | Path, what: str = "run record",
                  required: Mapping[str, type | tuple[type, ...]] | None = None) -> dict[str, Any] | None:
    """:func:`load_record`, or None where there is no file at all (a run that never got that far)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    return load_record(path, what, required)


#: ``config.json``: the resolved configuration (and the run id it hashes to, which rerun records need).
CONFIG_KEYS = {"config": dict}
#: ``summary.json``: at least the run and how it ended.
SUMMARY_KEYS = {"run_id": str, "status": str}


def load_run_config(run_dir: str | Path, required: Mapping[str, type | tuple[type, ...]] | None = None) -> dict[str, Any]:
    """A run folder's ``config.json`` (the record ``harness run`` wrote when the run started)."""
    return load_record(Path(run_dir) / "config.json", "run record (config.json)", {**CONFIG_KEYS, **(required or {})})


def load_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """A run folder's ``summary.json``, or None for a run that has not finished."""
    return load_optional(Path(run_dir) / "summary.json", "run summary (summary.json)", SUMMARY_KEYS)
