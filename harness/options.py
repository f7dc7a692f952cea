"""Typed option values: text from the command line (or a value from Python / a config file) → the
type a plugin's factory declares, or a one-line ``ConfigError`` naming the option and the type.

One parser for every plugin option, so ``normalize=False`` and ``normalize=no`` mean the same,
``alpha=5e-1`` and ``--alpha 0.5`` hash to the same run, and ``dropout=abc`` never reaches a
factory. The kind of an option comes from its default (``0.3`` → float, ``(32, 64)`` → a pair of
ints) and, where the default says nothing (``None``), from its annotation; an option with
neither is read as JSON where it parses (numbers, lists, true/false), else as text.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError

TRUE_WORDS = ("true", "yes", "1", "on")
FALSE_WORDS = ("false", "no", "0", "off")
_NAMES = {"bool": bool, "int": int, "float": float, "str": str}
_DESCRIBE = {bool: "a boolean (true/false, yes/no, 1/0, on/off)", int: "an integer",
             float: "a finite number", str: "text"}


@dataclass(frozen=True)
class Kind:
    """What an option holds: a scalar type, a fixed-length tuple of one, or anything (``None``)."""

    scalar: type | None
    length: int | None = None  # set for tuples

    def label(self) -> str:
        """A type as ``harness list`` shows it: ``int``, ``float``, ``bool``, ``str``, ``int×2``, ``any``."""
        if self.scalar is None:
            return "any"
        return self.scalar.__name__ + ("" if self.length is None else f"×{self.length}")

    def describe(self) -> str:
        if self.scalar is None:
            return "a value"
        if self.length is None:
            return _DESCRIBE[self.scalar]
        return f"{self.length} comma-separated {'integers' if self.scalar is int else 'numbers' if self.scalar is float else 'values'}"


def _annotation_kind(annotation: Any) -> Kind:
    """``float``, ``"float | None"``, ``Optional[float]`` → float; ``"tuple[int, int] | None"`` → 2 ints;
    anything else → any value. (Annotations are usually strings: ``from __future__ import annotations``.)"""
    if not isinstance(annotation, str):
        annotation = getattr(annotation, "__name__", None) if annotation in _NAMES.values() else str(annotation)
        annotation = (annotation or "").replace("typing.", "")
    text = annotation.replace(" ", "")
    text = re.sub(r"^Optional\[(.*)\]$", r"\1", text)
    parts = [p for p in text.split("|") if p not in ("None", "NoneType")]
    if len(parts) != 1:
        return Kind(None)
    if parts[0] in _NAMES:
        return Kind(_NAMES[parts[0]])
    match = re.fullmatch(r"tuple\[(\w+)((?:,\w+)*)\]", parts[0], flags=re.IGNORECASE)
    if match:
        items = [match.group(1), *[m for m in match.group(2).split(",") if m]]
        if len(set(items)) == 1 and items[0] in _NAMES:
            return Kind(_NAMES[items[0]], len(items))
    return Kind(None)


def kind_of(param: inspect.Parameter) -> Kind:
    """The kind of a factory parameter, from its default, else its annotation."""
    default = param.default
    if default is not param.empty and default is not None:
        if isinstance(default, (tuple, list)):
            types = {type(v) for v in default}
            scalar = types.pop() if len(types) == 1 and not types & {list, tuple} else None
            return Kind(scalar if scalar in _DESCRIBE else None, len(default))
        if type(default) in _DESCRIBE:
            return Kind(type(default))
        return Kind(None)
    return _annotation_kind(param.annotation)


def _bad(what: str, value: Any, kind: Kind) -> ConfigError:
    return ConfigError(f"{what}={value!s:.60}: expected {kind.describe()}")


def _scalar(value: Any, scalar: type, what: str, kind: Kind) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if scalar is str:
            return value
        if scalar is bool:
            if text.lower() in TRUE_WORDS:
                return True
            if text.lower() in FALSE_WORDS:
                return False
            raise _bad(what, value, kind)
        try:
            number = int(text) if scalar is int else float(text)
        except ValueError:
            raise _bad(what, value, kind) from None
        if scalar is float and not math.isfinite(number):
            raise _bad(what, value, kind)
        return number
    # values that are already typed (from Python or a config file)
    if scalar is bool and isinstance(value, (bool, int)) and value in (0, 1):
        return bool(value)
    if scalar is int and isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value) and float(value).is_integer():
        return int(value)
    if scalar is float and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise _bad(what, value, kind)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN / Infinity: not a setting anyone means


def _free(value: Any, what: str) -> Any:
    """An option of unknown kind: JSON where the text parses, else the text; never a non-finite number."""
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_constant=_reject_constant)
        except ValueError:
            return value
    if isinstance(value, list):
        return [_free(v, what) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{what}={value}: expected a finite number")
    return value


def parse_value(value: Any, kind: Kind, what: str) -> Any:
    """``value`` (text or already typed) as ``kind``; ``what`` names it in the error (``--loss-opt alpha``)."""
    if kind.scalar is None and kind.length is None:
        return _free(value, what)
    if kind.length is None:
        return _scalar(value, kind.scalar, what, kind)
    items: Any = value
    if isinstance(value, str):
        text = value.strip().strip("[]()")
        if kind.scalar is int:
            text = text.replace("x", ",")  # 32x64, as channel widths are often written
        items = text.split(",") if text else []
    if not isinstance(items, (list, tuple)) or len(items) != kind.length:
        raise _bad(what, value, kind)
    if kind.scalar is None:
        return tuple(_free(v, what) for v in items)
    return tuple(_scalar(v, kind.scalar, what, kind) for v in items)


def format_value(value: Any) -> str:
    """The text that :func:`parse_value` reads back as ``value`` (``KEY=`` this on the command line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def split_pairs(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """``["k=v", …]`` → ``{"k": "v"}``; malformed pairs and a key given twice are one-line errors."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {pair!r}")
        if not value.strip():
            raise ConfigError(f"{flag} {key}= has an empty value; leave the option out for its default")
        if key in out and out[key] != value:
            raise ConfigError(f"{flag} {key} given twice with different values ({out[key]!r} and {value!r})")
        out[key] = value
    return out


# -- numeric flags ----------------------------------------------------------------------------
def number_problem(value: Any, *, integer: bool = False, minimum: float | None = None,
                   maximum: float | None = None, above: float | None = None, below: float | None = None) -> str | None:
    """Why ``value`` is not a finite number (an integer) within the bounds, or None if it is."""
    bounds = [f"{op} {int(b) if float(b).is_integer() else b}" for op, b in ((">=", minimum), (">", above), ("<=", maximum), ("<", below)) if b is not None]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok:
        ok = ((minimum is None or value >= minimum) and (above is None or value > above)
              and (maximum is None or value <= maximum) and (below is None or value < below))
    if ok:
        return None
    return f"must be {'an integer' if integer else 'a finite number'}{' ' + ' and '.join(bounds) if bounds else ''}, got {value}"


def check_number(flag: str, value: Any, **rules: Any) -> None:
    """One-line ``ConfigError`` naming ``flag`` unless ``value`` is None or passes :func:`number_problem`."""
    if value is not None and (problem := number_problem(value, **rules)):
        raise ConfigError(f"{flag} {problem}")


def number_type(*, integer: bool = False, **bounds: float):
    """An argparse ``type=`` that reads a number and range-checks it (``--seed``, ``--trials``)."""

    def convert(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if integer else 'a number'}, got {text!r}") from None
        problem = number_problem(value, integer=integer, **bounds)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    convert.__name__ = "integer" if integer else "number"
    return convert
