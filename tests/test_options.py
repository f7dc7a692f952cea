"""Plugin options are typed from the factory's declaration; numeric flags are range-checked;
one setting has one spelling in the run id. Every bad value is a one-line ConfigError."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import build_parser, main
from harness.flags import config_from_args
from harness.errors import ConfigError
from harness.options import FALSE_WORDS, TRUE_WORDS, Kind, format_value, kind_of, parse_value
from harness.registry import ARCHITECTURES, LOSSES
from harness.runner.config import RunConfig


def resolved(*argv: str) -> RunConfig:
    args = build_parser().parse_args(["run", *argv])
    return config_from_args(args).resolved()


def test_loss_opt_alpha_is_typed_and_used() -> None:
    cfg = resolved("--loss", "triplet-city", "--loss-opt", "alpha=0.5")
    assert cfg.loss_options["alpha"] == 0.5 and isinstance(cfg.loss_options["alpha"], float)
    loss = LOSSES.create(cfg.loss, **cfg.loss_options)  # no "alpha given twice"
    assert (loss.alpha, loss.gamma) == (0.5, 10.0)


@pytest.mark.parametrize("word", [*FALSE_WORDS, "False", "OFF", "No"])
def test_every_false_spelling_turns_normalisation_off(word: str) -> None:
    cfg = resolved("--loss", "triplet-city", "--loss-opt", f"normalize={word}")
    assert cfg.loss_options["normalize"] is False
    assert LOSSES.create(cfg.loss, **cfg.loss_options).normalize is False


@pytest.mark.parametrize("word", [*TRUE_WORDS, "True", "YES"])
def test_every_true_spelling_keeps_it_on(word: str) -> None:
    assert resolved("--loss", "triplet-city", "--loss-opt", f"normalize={word}").loss_options["normalize"] is True


@pytest.mark.parametrize("argv, needle", [
    (["--loss", "triplet-city", "--loss-opt", "alpha=abc"], "--loss-opt alpha=abc: expected a finite number"),
    (["--arch-opt", "dropout=abc"], "--arch-opt dropout=abc: expected a finite number"),
    (["--loss", "triplet-city", "--loss-opt", "normalize=maybe"], "normalize=maybe: expected a boolean"),
    (["--arch-opt", "kernel_size=7.5"], "kernel_size=7.5: expected an integer"),
    (["--arch", "dcase-baseline", "--arch-opt", "channels=32"], "channels=32: expected 2 comma-separated integers"),
    (["--loss", "triplet-city", "--loss-opt", "gamma=nan"], "gamma=nan"),
    (["--loss", "triplet-city", "--alpha", "0.3", "--loss-opt", "alpha=0.5"], "two values"),
    (["--loss", "triplet-city", "--loss-opt", "alpha=0.3", "--loss-opt", "alpha=0.5"], "given twice"),
    (["--loss-opt", "alpha"], "KEY=VALUE"),
    (["--loss-opt", "nope=1"], "takes no option 'nope'"),
    (["--seed", "-1"], "--seed must be an integer >= 0"),
    (["--lr", "inf"], "--lr must be a finite number > 0"),
    (["--lr", "0"], "--lr"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "-4"], "--batch-size"),
    (["--mels", "0"], "--mels"),
    (["--score-last", "0"], "--score-last"),
    (["--mixup-alpha", "nan"], "--mixup-alpha"),
    (["--loss", "triplet-city", "--gamma", "-1"], "--gamma"),
    (["--mels", "abc"], "--mels"),
])
def test_bad_values_are_one_line_errors_before_anything_is_written(argv, needle, tmp_path, capsys) -> None:
    code = main(["run", "--results", str(tmp_path / "r"), "--data", str(tmp_path / "nowhere"), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command, argv, needle", [
    ("tune", ["--trials", "0"], "--trials"),
    ("tune", ["--n-jobs", "0"], "--n-jobs"),
    ("tune", ["--timeout", "-5"], "--timeout"),
    ("tune", ["--val-fraction", "1.5"], "--val-fraction"),
    ("tune", ["--loss-opt", "alpha=x"], "--loss-opt alpha=x"),
    ("grid", ["--seeds", "0"], "--seeds"),
    ("grid", ["--jobs", "0"], "--jobs"),
    ("grid", ["--mels", "0"], "--mels"),
    ("grid", ["--lr", "inf"], "--lr"),
    ("grid", ["--epochs", "-3"], "--epochs"),
])
def test_tune_and_grid_check_values_the_same_way(command, argv, needle, tmp_path, capsys) -> None:
    code = main([command, "--results", str(tmp_path / "r"), "--data", str(tmp_path / "nowhere"), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "r").exists()


def test_a_setting_has_one_run_id_however_spelled() -> None:
    spellings = [
        ["--alpha", "0.5"], ["--loss-opt", "alpha=0.5"], ["--loss-opt", "alpha=5e-1"],
        ["--alpha", "0.5", "--loss-opt", "alpha=0.50"], ["--loss-opt", "alpha=.5", "--gamma", "10"],
    ]
    ids = {resolved("--loss", "triplet-city", *s).run_id() for s in spellings}
    assert len(ids) == 1
    assert resolved("--loss", "triplet-city").run_id() == resolved("--loss", "triplet-city", "--alpha", "0.2").run_id()
    assert resolved("--loss", "triplet-city", "--alpha", "0.3").run_id() not in ids
    cfg = resolved("--loss", "triplet-city", "--alpha", "0.5")
    assert (cfg.alpha, cfg.gamma) == (None, None) and cfg.loss_options["alpha"] == 0.5  # one home for α and γ
    assert cfg.resolved().run_id() == cfg.run_id()  # resolving is idempotent
    assert RunConfig.from_dict(cfg.to_dict()).resolved().run_id() == cfg.run_id()  # and survives config.json


def test_tuple_options_in_any_spelling() -> None:
    ids = {resolved("--arch", "dcase-baseline", "--arch-opt", f"channels={v}").run_id()
           for v in ("16,32", "[16, 32]", "(16,32)", "16x32")}
    assert len(ids) == 1
    assert resolved("--arch", "fcnn", "--arch-opt", "channels=16,32").arch_options["channels"] == (16, 32)


def test_values_from_python_are_checked_too() -> None:
    loss = LOSSES.create("triplet-city", alpha="0.5", normalize="no")
    assert (loss.alpha, loss.normalize) == (0.5, False)
    with pytest.raises(ConfigError, match="expected a boolean"):
        LOSSES.create("triplet-city", normalize="maybe")
    with pytest.raises(ConfigError, match="expected an integer"):
        RunConfig(arch_options={"kernel_size": 7.5}).resolved()
    assert RunConfig(arch_options={"kernel_size": 5.0}).resolved().arch_options["kernel_size"] == 5


# -- property test: every declared option of every registered plugin ---------------------------
def declared_options() -> list[tuple[str, str, str, Kind]]:
    out = []
    for registry in (ARCHITECTURES, LOSSES):
        for name in registry.names():
            for key, param in registry.plugins[name].parameters(registry.hidden_args).items():
                out.append((registry.flag, name, key, kind_of(param)))
    return out


OPTIONS = declared_options()


def _value_for(kind: Kind):
    scalar = {bool: st.booleans(), int: st.integers(-10**6, 10**6),
              float: st.floats(allow_nan=False, allow_infinity=False, width=64),
              str: st.text(min_size=1, max_size=12)}
    if kind.scalar is None:
        return st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
    item = scalar[kind.scalar]
    return item if kind.length is None else st.tuples(*[item] * kind.length)


def test_every_registered_plugin_declares_typed_options() -> None:
    assert {(f, n) for f, n, _, _ in OPTIONS} >= {("--loss-opt", "triplet-city"), ("--arch-opt", "fcnn")}
    untyped = [(n, k) for _, n, k, kind in OPTIONS if kind.scalar is None]
    assert not untyped, f"options whose type cannot be read from default or annotation: {untyped}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(option=st.sampled_from(OPTIONS), data=st.data())
def test_typed_values_round_trip_through_the_command_line_text(option, data) -> None:
    flag, name, key, kind = option
    value = data.draw(_value_for(kind))
    text = format_value(value)
    if kind.scalar is str and ("," in text or text.strip() != text):
        return  # not representable as one KEY=VALUE pair of a tuple; covered by the fuzz test below
    parsed = parse_value(text, kind, f"{flag} {key}")
    assert parsed == value or (isinstance(value, float) and math.isclose(parsed, value))
    assert parse_value(parsed, kind, f"{flag} {key}") == parsed  # typed values are fixed points


@settings(max_examples=400, deadline=None)
@given(option=st.sampled_from(OPTIONS),
       text=st.one_of(st.text(max_size=20), st.from_regex(r"-?[0-9]{0,4}(\.[0-9]{0,3})?(e-?[0-9])?", fullmatch=True),
                      st.sampled_from(["nan", "inf", "-inf", "true", "off", "[1,2]", "1,2", "(3, 4)", "1e999", " 7 ", "0x10"])))
def test_random_text_is_accepted_and_round_trips_or_is_one_line_error(option, text) -> None:
    flag, name, key, kind = option
    try:
        value = parse_value(text, kind, f"{flag} {key}")
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(f"{flag} {key}=") and "expected" in message
        return
    again = parse_value(format_value(value), kind, f"{flag} {key}")
    assert again == value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(option=st.sampled_from(OPTIONS), text=st.text(max_size=12))
def test_the_cli_path_never_raises_anything_but_a_config_error(option, text) -> None:
    flag, name, key, kind = option
    argv = ["--arch", name] if flag == "--arch-opt" else ["--loss", name]
    try:
        resolved(*argv, flag, f"{key}={text}")
    except ConfigError as exc:
        assert "\n" not in str(exc)
