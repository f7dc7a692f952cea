"""Comma-separated metadata files (ESC-50, UrbanSound8K, manifests) read with one-line errors.

pandas does the parsing; what is checked here is what a loader trusts afterwards: the header,
no empty cells in required columns, integer columns, values from a known set, no duplicate files.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

import pandas as pd

from harness.errors import DataError

#: Control characters (C0, DEL, C1, line and paragraph separators): never part of a label or a name.
CONTROL = "[\x00-\x1f\x7f-\x9f\u2028\u2029]"


def read_metadata(path: Path, required: Sequence[str], optional: Sequence[str] = (), *,
                  exact: bool = False, what: str = "metadata") -> pd.DataFrame:
    """The file as strings; ``required`` columns must exist (``exact``: and nothing else, in order)."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{what} file not found", path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"unreadable {what} ({' '.join(str(exc).split())})", path) from None
    df.columns = [str(c).strip() for c in df.columns]
    found = list(df.columns)
    if exact and found != list(required):
        raise DataError(f"wrong header: expected {','.join(required)!r}, found {','.join(found)!r}", path)
    missing = [c for c in required if c not in found]
    if missing:
        raise DataError(f"wrong header: no column {missing[0]!r} (expected {', '.join(required)}"
                        + (f"; optional {', '.join(optional)}" if optional else "") + f"; found {', '.join(found)})", path)
    if df.empty:
        raise DataError(f"{what} lists no clips", path)
    for col in [c for c in (*required, *optional) if c in found]:
        bad = df.index[df[col].str.contains(CONTROL, regex=True)]
        if len(bad):  # a TAB or newline in a label ends up inside submission files and tables
            raise DataError(f"line {int(bad[0]) + 2}: {col} {df[col].iloc[int(bad[0])]!r} contains a control character "
                            "(tab, newline, …); names must be plain text", path)
    for col in required:
        df[col] = df[col].str.strip()
        empty = df.index[df[col] == ""]
        if len(empty):
            raise DataError(f"line {int(empty[0]) + 2}: empty {col!r}", path)
    return df


def integers(df: pd.DataFrame, column: str, path: Path, lo: int | None = None, hi: int | None = None) -> pd.Series:
    """``column`` as int64; a non-integer or out-of-range value is a one-line error naming its line."""
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if lo is not None:
        bad |= values < lo
    if hi is not None:
        bad |= values > hi
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        where = f" (expected {lo}..{hi})" if lo is not None and hi is not None else ""
        raise DataError(f"line {i + 2}: {column} {df[column].iloc[i]!r} is not a valid value{where}", path)
    return values.astype("int64")


def check_values(df: pd.DataFrame, column: str, allowed: Iterable[str], path: Path) -> None:
    allowed = set(allowed)
    bad = ~df[column].isin(allowed)
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"line {i + 2}: unknown {column} {df[column].iloc[i]!r} (expected one of "
                        f"{', '.join(sorted(allowed))})", path)


def check_filenames(names: pd.Series, path: Path) -> None:
    """Relative, inside the dataset folder, listed once."""
    for i, name in enumerate(names):
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts:
            raise DataError(f"line {i + 2}: filename {name!r} must be relative to the dataset folder", path)
    dup = names.duplicated()
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        raise DataError(f"line {i + 2}: {names.iloc[i]} is listed twice", path)
