"""Reading a small text file that a user or a record names: regular files only, of bounded size.

``--config /dev/zero`` would otherwise never return, a FIFO would block on open, and a huge file
would be read whole into memory before any check. The file is refused in one line, before it is
opened, when it is not a regular file or is larger than the limit its kind may sensibly have.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from harness.errors import ConfigError, HarnessError

MIB = 1 << 20
#: Experiment, grid and budget files: a page of settings.
SETTINGS_LIMIT = MIB


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_text(path: str | Path, *, what: str = "file", limit: int = SETTINGS_LIMIT,
              error: type[HarnessError] = ConfigError) -> str:
    """The UTF-8 text of ``path``; anything else is an ``error`` naming the file and ``what`` it should be."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} not found", path) from None
    except OSError as exc:
        raise error(f"cannot read {what} ({exc.strerror or exc})", path) from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} is {_kind(st.st_mode)}, not a regular file", path)
    if st.st_size > limit:
        raise error(f"{what} is {st.st_size:,} bytes, more than the {limit:,} such a file may have", path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)  # the file may have grown since stat
    except OSError as exc:
        raise error(f"cannot read {what} ({exc.strerror or exc})", path) from None
    if len(data) > limit:
        raise error(f"{what} is more than the {limit:,} bytes such a file may have", path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 text (byte {exc.start})", path) from None
