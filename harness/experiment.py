"""Experiments as files: a TOML file whose keys are a command's long flags.

The keys are read off the command's argparse parser, so every flag is a key the moment it is
added (``batch-size = 64``, ``arch-opt = {conv_impl = "fused"}``, ``no-progress = true``), and
values go through the flag's own type and choices. Flags given on the command line override the
file; for repeatable flags (``--arch-opt``) the command line's items come after the file's, so a
``KEY=VALUE`` given there wins over the same key in the file.
"""

from __future__ import annotations

import argparse
import difflib
import json
import tomllib
from pathlib import Path
from typing import Any, Iterable

from harness.errors import ConfigError

#: Flags that say where a configuration comes from or what to do with it: never keys themselves.
CONTROL_FLAGS = ("config", "from_run", "dump_config")


def flag_keys(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """``key → action`` for every long flag of ``parser`` (``--batch-size`` → ``batch-size``)."""
    keys: dict[str, argparse.Action] = {}
    for action in parser._actions:  # argparse has no public accessor; this list is stable API in practice
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs or action.dest in CONTROL_FLAGS or action.dest == argparse.SUPPRESS:
            continue
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        keys[longs[0][2:]] = action
    return keys


def canonical_key(key: str) -> str:
    return key.replace("_", "-")


def unknown_key_error(key: str, known: Iterable[str], source: str) -> ConfigError:
    close = difflib.get_close_matches(canonical_key(key), list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "; the keys are the long flags shown by --help"
    return ConfigError(f"unknown key {key!r}{hint}", source)


def read_file(path: str | Path) -> dict[str, Any]:
    """A TOML file (or YAML, ``.yaml``/``.yml``, through PyYAML, which Optuna already requires)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError("experiment file not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read experiment file ({exc})", path) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {' '.join(str(exc).split())}", path) from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", path) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a table of KEY = VALUE lines at the top level", path)
    return data


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return str(value)


def to_argv(values: dict[str, Any], keys: dict[str, argparse.Action], source: str) -> list[str]:
    """The command-line tokens that say what ``values`` says (validated by the parser later)."""
    argv: list[str] = []
    for key, value in values.items():
        name = canonical_key(key)
        action = keys.get(name)
        if action is None:
            raise unknown_key_error(key, keys, source)
        flag = f"--{name}"
        if action.nargs == 0:  # store_true / store_false / store_const
            if not isinstance(value, bool):
                raise ConfigError(f"key {key!r} is a switch: give true or false, got {value!r}", source)
            if value != bool(action.default):
                argv.append(flag)
        elif isinstance(action, argparse._AppendAction):
            items = value if isinstance(value, list) else [value]
            if isinstance(value, dict):  # arch-opt = {conv_impl = "fused", ...}; aug-opt = {mixup = {alpha = 0.4}}
                flat = {f"{k}.{kk}" if isinstance(v, dict) else k: vv for k, v in value.items()
                        for kk, vv in (v.items() if isinstance(v, dict) else [(None, v)])}
                items = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in flat.items()
                         if v is not None]  # None: the option's default
            for item in items:
                argv += [flag, _text(item)]
        elif isinstance(value, dict):
            raise ConfigError(f"key {key!r} takes a value, not a table", source)
        else:
            argv += [flag, _text(value)]
    return argv


def parse_values(parser: argparse.ArgumentParser, argv: list[str], source: str) -> argparse.Namespace:
    """Parse ``argv`` with ``parser``; a bad value is a one-line error naming ``source``."""
    def fail(message: str) -> None:
        raise ConfigError(message, source)

    original = parser.error
    parser.error = fail  # type: ignore[method-assign]
    try:
        return parser.parse_args(argv)
    finally:
        parser.error = original  # type: ignore[method-assign]


def given_dests(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The destinations that ``argv`` sets explicitly (parsed with every default suppressed)."""
    saved = [(a, a.default) for a in parser._actions]
    saved_defaults = dict(parser._defaults)
    try:
        for action in parser._actions:
            action.default = argparse.SUPPRESS
        parser._defaults.clear()
        ns, _ = parser.parse_known_args(argv)
    finally:
        for action, default in saved:
            action.default = default
        parser._defaults.update(saved_defaults)
    return set(vars(ns))


def merge(parser: argparse.ArgumentParser, args: argparse.Namespace, given: set[str],
          values: dict[str, Any], source: str) -> argparse.Namespace:
    """``args`` with ``values`` (file keys) filled in wherever the command line did not set them."""
    keys = flag_keys(parser)
    from_file = parse_values(parser, to_argv(values, keys, source), source)
    set_by_file = {keys[canonical_key(k)] for k in values}
    out = argparse.Namespace(**vars(args))
    for action in set_by_file:
        dest, file_value = action.dest, getattr(from_file, action.dest)
        if dest not in given:
            setattr(out, dest, file_value)
        elif isinstance(action, argparse._AppendAction) and file_value and getattr(args, dest):
            cli = list(getattr(args, dest))
            overridden = {str(item).partition("=")[0] for item in cli if "=" in str(item)}
            kept = [item for item in file_value if str(item).partition("=")[0] not in overridden]
            setattr(out, dest, kept + cli)  # a KEY=VALUE on the command line replaces the file's
    return out


def apply_config(args: argparse.Namespace, values: dict[str, Any] | None = None,
                 source: str | None = None) -> argparse.Namespace:
    """Fill ``args`` from ``--config FILE`` (or from ``values``), under the command line's flags."""
    if values is None:
        if not getattr(args, "config", None):
            return args
        source = str(args.config)
        values = read_file(args.config)
    return merge(args.command_parser, args, args.given, values, source or "configuration")


def dump_values(args: argparse.Namespace, parser: argparse.ArgumentParser,
                skip: Iterable[str] = ()) -> dict[str, Any]:
    """The flags' current values as file keys (unset ones, ``None``, are left out)."""
    out: dict[str, Any] = {}
    for key, action in flag_keys(parser).items():
        if action.dest in skip:
            continue
        value = getattr(args, action.dest, None)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = as_table(value) or list(value)
        out[key] = value
    return out


def as_table(items: Iterable[Any]) -> dict[str, Any] | None:
    """``["conv_impl=fused", "normalize=false"]`` → ``{conv_impl = "fused", normalize = false}``;
    None unless every item is ``KEY=VALUE``."""
    table: dict[str, Any] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or not key:
            return None
        try:
            table[key] = json.loads(text)
        except json.JSONDecodeError:
            table[key] = text
    return table or None


def dumps(values: dict[str, Any], header: str = "") -> str:
    """TOML text (tomli-w: the writer of the TOML parser that became ``tomllib``)."""
    import tomli_w

    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + tomli_w.dumps(values)


def dump_config(args: argparse.Namespace, command: str) -> str:
    values = dump_values(args, args.command_parser, skip=("force", "no_progress"))
    return dumps(values, f"harness {command}: every key is a long flag of `harness {command}` "
                         f"(see harness {command} --help)\nrun it with: harness {command} --config FILE")
