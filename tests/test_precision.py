"""``--precision``: resolution of ``auto`` from the hardware, and its place in the run id."""

from __future__ import annotations

import pytest
import torch

from harness import precision
from harness.errors import ConfigError
from harness.runner.config import RunConfig


@pytest.mark.parametrize("flags,expected", [
    (set(), ("fp32", "auto: no native bf16 on this CPU")),
    ({"avx512f", "avx512_bf16"}, ("bf16" if precision.AUTO_BF16["avx512_bf16"] else "fp32", None)),
    ({"avx512_bf16", "amx_bf16", "amx_tile"}, ("bf16" if precision.AUTO_BF16["amx_bf16"] else "fp32", None)),
])
def test_auto_follows_the_cpu_flags(monkeypatch: pytest.MonkeyPatch, flags, expected) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    got = precision.resolve_precision("auto", torch.device("cpu"))
    assert got[0] == expected[0]
    if expected[1]:
        assert got[1] == expected[1]
    assert precision.resolve_precision("bf16", torch.device("cpu")) == ("bf16", "requested")


def test_auto_takes_bf16_where_the_table_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setitem(precision.AUTO_BF16, "amx_bf16", True)
    assert precision.resolve_precision("auto", torch.device("cpu")) == ("bf16", "auto: native bf16 (amx_bf16)")


def test_precision_is_part_of_the_run_id_and_fp32_ids_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    fp32 = RunConfig(device="cpu", precision="fp32").resolved()
    bf16 = RunConfig(device="cpu", precision="bf16").resolved()
    assert fp32.run_id() != bf16.run_id() and "-bf16-" in bf16.run_id()
    assert "precision" not in fp32.hashed_fields()  # ids of runs stored before the option stay valid
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset())
    auto = RunConfig(device="cpu").resolved()
    assert (auto.precision, auto.run_id()) == ("fp32", fp32.run_id())
    assert auto.precision_reason == "auto: no native bf16 on this CPU"
    with pytest.raises(ConfigError, match="--precision must be one of fp32, bf16, fp16, auto, got 'fp8'"):
        RunConfig(device="cpu", precision="fp8").resolved()


def test_cli_rejects_an_unknown_precision(capsys) -> None:
    from harness.cli import main

    assert main(["run", "--precision", "fp8"]) == 2  # a usage error: one line, exit 2
    err = capsys.readouterr().err
    assert "invalid choice: 'fp8'" in err and err.count("\n") == 1
