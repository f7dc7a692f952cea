"""Rerunning a stored run from its record (``harness run --from RUN_ID [overrides]``).

The record's ``config.json`` holds the resolved configuration. It is turned back into the flags
of ``harness run`` so the command line can override any of them (another ``--seed``), and every
setting the overrides do not touch is taken from the record as it is, including settings that
have no flag (the inner validation split of a tuning trial). A record written by another
harness version is compared with this one, and what the rerun cannot reproduce is said.
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from harness import __version__
from harness.errors import ConfigError
from harness.experiment import flag_keys, merge
from harness.flags import field_of
from harness.results.migrate import read_record
from harness.runner.config import RunConfig

@dataclass
class Record:
    """A run's ``config.json``: where it is, the configuration, and what made it."""

    path: Path
    run_id: str
    config: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)


def find_record(ref: str, results: Path) -> Record:
    """``ref`` is a run id in ``results``, a run folder, or a ``config.json``."""
    candidates = [Path(ref), Path(ref) / "config.json", results / "runs" / ref / "config.json"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        known = sorted(p.name for p in (results / "runs").glob("*") if (p / "config.json").is_file())
        close = difflib.get_close_matches(ref, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f" ({len(known)} runs stored there)"
        raise ConfigError(f"--from {ref!r}: no such run in {results / 'runs'}{hint}")
    try:
        data = read_record(path)
        return Record(path, str(data["run_id"]), dict(data["config"]), dict(data.get("environment") or {}))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"not a run record ({type(exc).__name__}: {exc})", path) from None


def record_flags(cfg: RunConfig, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The ``harness run`` flags that say what ``cfg`` says (as experiment-file keys)."""
    out: dict[str, Any] = {}
    for key, action in flag_keys(parser).items():
        name = field_of(action.dest)
        if name is None:
            continue
        value = getattr(cfg, name)
        if value is None or (isinstance(value, dict) and not value):
            continue
        out[key] = value
    return out


def differences(record: Record) -> list[str]:
    """What a rerun of ``record`` with this harness cannot promise to reproduce, one line each."""
    notes = []
    known = {f.name: f for f in fields(RunConfig)}
    for name in sorted(set(record.config) - set(known)):
        notes.append(f"the record's option {name}={record.config[name]!r} does not exist in harness {__version__}; "
                     "it is ignored, so the rerun may differ")
    for name in sorted(set(known) - set(record.config)):
        default = getattr(RunConfig(), name)
        notes.append(f"option {name!r} did not exist when the record was written; the rerun uses its default {default!r}")
    env = record.environment
    recorded = env.get("harness")
    if recorded and recorded != __version__:
        notes.append(f"recorded with harness {recorded}, this is {__version__}: code changes since may change the numbers")
    from harness.runner.environment import environment_record, git_commit

    commit = (env.get("git") or {}).get("commit")
    now = git_commit().get("commit")
    if commit and now and commit != now and recorded == __version__:
        notes.append(f"recorded at commit {commit[:10]}, this checkout is at {now[:10]}: code changes since may change the numbers")
    import torch

    here = environment_record(torch.device("cpu"))
    for pkg, then in sorted((env.get("packages") or {}).items()):
        if then and here["packages"].get(pkg) and here["packages"][pkg] != then:
            notes.append(f"recorded with {pkg} {then}, this is {here['packages'][pkg]}: floating-point results may differ")
    threads = env.get("torch_threads")
    if threads and threads != torch.get_num_threads() and str(env.get("device", "cpu")).startswith("cpu"):
        notes.append(f"recorded with {threads} CPU threads, this process has {torch.get_num_threads()}: "
                     "parallel sums round differently, so metrics may differ in the last digits")
    return notes


def rerun_config(record: Record, parser: argparse.ArgumentParser, args: argparse.Namespace, given: set[str],
                 build: Callable[[argparse.Namespace], RunConfig]) -> tuple[RunConfig, argparse.Namespace, set[str]]:
    """The record's configuration with the command line's flags applied on top.

    ``build`` turns parsed flags into a ``RunConfig`` (the command's own mapping). The fields
    that the overrides change are found by building once without and once with them; all
    others are the record's values, untouched. Returns the configuration, the flags in effect
    and the names of the fields the command line changed.
    """
    known = {f.name for f in fields(RunConfig)}
    stored = RunConfig(**{k: v for k, v in record.config.items() if k in known})
    values = record_flags(stored, parser)
    source = str(record.path)
    defaults = parser.parse_args([])
    plain = build(merge(parser, defaults, set(), values, source))
    overridden_args = merge(parser, args, given, values, source)
    overridden = build(overridden_args)
    changed = {f.name: getattr(overridden, f.name) for f in fields(RunConfig)
               if getattr(overridden, f.name) != getattr(plain, f.name)}
    return replace(stored, **changed), overridden_args, set(changed)
