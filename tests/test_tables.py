"""Tables 1-2 from a FABRICATED results store (tests/fixtures_store.py) and the paper's numbers."""

from __future__ import annotations

import json
import math
import re
import sys
import types
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest

from fixtures_store import OTHER_IDENTITY, write_store
from harness.cli import build_parser, main
from harness.errors import ConfigError, DataError
from harness.report.paper import PaperParams, load_paper, paper_path
from harness.report.tables import FORMATS, build_table1, build_table2, load_index, render, runs_of
from harness.grids.variants import EXTRA_VARIANTS, PAPER_VARIANTS, VARIANTS, get_variant
from harness.results.store import ResultsStore


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("fixture-store"))


@pytest.fixture()
def fake_complexity(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in for harness.complexity with invented counts, so Table 2's arithmetic is checkable."""
    mod = types.ModuleType("harness.complexity")
    mod.TABLE2_CONFIGS = [("dcase-baseline", 40), ("subspectralnet", 40), ("fcnn", 40), ("subspectralnet", 200), ("fcnn", 200)]
    counts = {("dcase-baseline", 40): 117_686, ("subspectralnet", 40): 331_560, ("fcnn", 40): 113_160,
              ("subspectralnet", 200): 2_541_384, ("fcnn", 200): 875_000}
    mod.measure = lambda arch, n_mels, n_frames=500: types.SimpleNamespace(params=counts[(arch, n_mels)], macs=1_000_000 * n_mels)
    monkeypatch.setitem(sys.modules, "harness.complexity", mod)
    import harness

    monkeypatch.setattr(harness, "complexity", mod, raising=False)
    return mod


# -- the paper's numbers ------------------------------------------------------------------------
def test_paper_json_holds_tables_1_and_2() -> None:
    paper = load_paper()
    assert paper.path == paper_path() and "Cho" in paper.citation and paper.table1_units == "% accuracy"
    expected = {"SubSpectralNet": (68.93, 73.44, 58.29, 68.71), "FCNN": (71.15, 75.97, 59.89, 70.32),
                "FCNN-mixup": (71.57, 76.25, 62.19, 68.70), "FCNN-spec": (71.85, 76.44, 63.9, 71.74),
                "FCNN-mixup-spec": (72.76, 75.97, 62.62, 70.40), "FCNN-triplet": (72.67, 76.61, 63.07, 70.24),
                "FCNN-triplet-spec": (73.14, 77.19, 64.23, 72.38)}
    for name, (o40, o200, u40, u200) in expected.items():
        got = [paper.accuracy(name, m, n) for m, n in (("overall", 40), ("overall", 200), ("unseen", 40), ("unseen", 200))]
        assert got == [o40, o200, u40, u200], name
    rank1 = paper.table1["DCASE 2019 Rank 1"]
    assert not rank1.harness_variant and rank1.values == {("overall", 40): 85.10}
    printed = [(r.arch, r.n_mels, r.printed) for r in paper.table2]
    assert printed == [("dcase-baseline", 40, "117K"), ("subspectralnet", 40, "331K"), ("fcnn", 40, "113K"),
                       ("subspectralnet", 200, "2,541K"), ("fcnn", 200, "871K"), (None, None, "48M")]
    p = paper.protocol
    assert (p["epochs"], p["score_last_epochs"], p["runs_per_config"], p["lr"], p["unseen_clips"]) == (200, 10, 2, 0.001, 1440)
    assert (p["triplet_margin_alpha"], p["triplet_weight_gamma"]) == (0.2, 10)


def test_printed_count_agreement() -> None:
    k117 = PaperParams("DCASE baseline", "dcase-baseline", 40, "117K", 117_000)
    assert k117.agrees_with(117_686) and k117.agrees_with(117_000)
    assert not k117.agrees_with(118_600) and not k117.agrees_with(116_400)
    assert PaperParams("FCNN", "fcnn", 200, "871K", 871_000).agrees_with(870_600)  # printed rounded


def test_missing_or_malformed_paper_json_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope.json"))):
        load_paper(tmp_path / "nope.json")
    bad = tmp_path / "paper.json"
    bad.write_text('{"source": {}}')
    with pytest.raises(DataError, match="malformed paper.json"):
        load_paper(bad)


# -- variants -----------------------------------------------------------------------------------
def test_variants_map_table1_rows_to_runs() -> None:
    assert [v.name for v in PAPER_VARIANTS] == ["SubSpectralNet", "FCNN", "FCNN-mixup", "FCNN-spec", "FCNN-mixup-spec",
                                                "FCNN-triplet", "FCNN-triplet-spec"]
    assert {v.name for v in EXTRA_VARIANTS} == {"DCASE baseline", "FCNN-triplet-random"}
    assert len({v.key for v in VARIANTS}) == len(VARIANTS)
    assert get_variant("fcnn-mixup-spec").key == ("fcnn", "ce", "mixup,spec")
    runs = pd.DataFrame({"arch": ["fcnn", "fcnn", "fcnn", "fcnn"], "loss": ["triplet-city", "triplet-city", "ce", "triplet-city"],
                         "aug": ["spec", "spec", "spec", "spec"], "n_mels": [40, 40, 40, 200], "seed": [1, 0, 0, 0]})
    filled = runs_of(runs, get_variant("FCNN-triplet-spec"), 40)  # the runs that fill the row's 40-mel cells
    assert list(filled.index) == [1, 0] and list(filled["seed"]) == [0, 1]
    assert runs_of(runs.assign(aug="bogus"), get_variant("FCNN-triplet-spec"), 40).empty
    assert get_variant("FCNN-triplet").command(200, 1, "paper", "synthetic") == (
        "harness run --arch fcnn --loss triplet-city --aug none --mels 200 --seed 1 --preset paper")
    assert get_variant("DCASE baseline").command(40, 0, "paper", "/data/my TAU", "all") == (
        "harness run --arch dcase-baseline --loss ce --aug none --mels 40 --seed 0 --preset paper "
        "--data '/data/my TAU' --unseen all")
    with pytest.raises(ConfigError, match="unknown variant"):
        get_variant("resnet")


# -- Table 1 ------------------------------------------------------------------------------------
def test_table1_means_std_and_differences(store: Path) -> None:
    t = build_table1(load_index(store), mels=(40,), results=store)
    fcnn = t.cells[("FCNN", 40, "overall")]
    assert fcnn.values == (70.0, 72.0) and fcnn.seeds == (0, 1)
    assert fcnn.mean == pytest.approx(71.0) and fcnn.std == pytest.approx(math.sqrt(2))  # ddof = 1
    assert fcnn.paper == 71.15 and fcnn.diff == pytest.approx(-0.15)
    unseen = t.cells[("FCNN", 40, "unseen")]
    assert unseen.mean == pytest.approx(58.0) and unseen.std == pytest.approx(math.sqrt(18))
    ssn = t.cells[("SubSpectralNet", 40, "overall")]
    assert ssn.mean == pytest.approx(61.0) and ssn.diff == pytest.approx(61.0 - 68.93)
    spec = t.cells[("FCNN-spec", 40, "overall")]
    assert spec.n == 1 and spec.std is None and spec.mean == pytest.approx(73.0)
    assert t.selection.dataset_identity.startswith("fixture0001") and t.selection.unseen_clips == 30
    assert any(OTHER_IDENTITY in n for n in t.selection.notes)  # the other dataset is named, not mixed in


def test_missing_runs_are_listed_with_their_commands(store: Path) -> None:
    t = build_table1(load_index(store), mels=(40,), include_extra=False)
    # FCNN-mixup only failed, FCNN-mixup-spec is still running: neither fills a cell.
    assert t.cells[("FCNN-mixup", 40, "overall")].n == 0
    assert t.cells[("FCNN-mixup-spec", 40, "unseen")].n == 0
    cmds = t.commands()
    assert "harness run --arch fcnn --loss ce --aug mixup --mels 40 --seed 0 --preset quick" in cmds
    assert "harness run --arch fcnn --loss ce --aug mixup,spec --mels 40 --seed 1 --preset quick" in cmds
    assert "harness run --arch fcnn --loss ce --aug spec --mels 40 --seed 1 --preset quick" in cmds  # partial cell
    assert not any("--aug spec --mels 40 --seed 0" in c and "triplet" not in c for c in cmds)  # seed 0 exists
    assert len(cmds) == 7  # mixup ×2, spec ×1, mixup-spec ×2, triplet-spec ×2
    text = render([t], "text")
    assert text.count("missing") >= 6 and all(c in text for c in cmds)
    rows = {r["variant"]: r for r in t.records() if r["metric"] == "overall"}
    assert rows["FCNN-mixup"]["status"] == "missing" and rows["FCNN-spec"]["status"] == "partial"
    assert rows["FCNN"]["status"] == "complete"


def test_dataset_and_preset_selection(store: Path) -> None:
    index = load_index(store)
    other = build_table1(index, dataset=OTHER_IDENTITY[:8], mels=(40,))
    assert other.cells[("FCNN", 40, "overall")].values == (75.0,)
    assert other.cells[("SubSpectralNet", 40, "overall")].n == 0
    sel = other.selection
    assert (sel.preset, sel.unseen_protocol, sel.dataset_kind) == ("paper", "all", "tau2019")
    assert "protocol all (the paper's protocol is all" in sel.describe()
    assert all("--preset paper --data /data/TAU-urban-acoustic-scenes-2019-development --unseen all" in c for c in other.commands())
    synth = build_table1(index, dataset="synthetic", mels=(40,))
    assert synth.cells[("FCNN", 40, "overall")].n == 2 and "synthetic dataset" in synth.selection.describe()
    assert build_table1(index, preset="paper", mels=(40,)).cells[("FCNN", 40, "overall")].n == 0
    with pytest.raises(ConfigError, match="no run in the results index used dataset 'deadbeef'"):
        build_table1(index, dataset="deadbeef")


def test_runs_off_the_preset_are_left_out_and_said_so(tmp_path: Path) -> None:
    root = write_store(tmp_path)
    summary = json.loads((root / "runs" / "fx-FCNN-s0" / "summary.json").read_text())
    ResultsStore(root).update_index({**summary, "run_id": "fx-short", "epochs": 3, "seed": 2, "acc_score": 0.1})
    t = build_table1(load_index(root), mels=(40,), seeds=(0, 1, 2))
    assert t.cells[("FCNN", 40, "overall")].seeds == (0, 1)
    assert any("fx-short" in n and "differ from preset quick" in n for n in t.selection.notes)


def test_empty_store_gives_all_cells_missing(tmp_path: Path) -> None:
    t = build_table1(load_index(tmp_path), mels=(40, 200))
    assert all(c.n == 0 for c in t.cells.values())
    assert len(t.commands()) == len(VARIANTS) * 2 * 2
    assert "no complete runs match" in render([t], "markdown")


# -- formats ------------------------------------------------------------------------------------
def _balanced(tex: str) -> bool:
    depth = 0
    for ch in re.sub(r"\\[{}]", "", tex):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_parses(store: Path, fake_complexity: types.ModuleType, fmt: str) -> None:
    t1 = build_table1(load_index(store), mels=(40, 200))
    t2 = build_table2()
    out = render([t1, t2], fmt)
    if fmt == "csv":
        df = pd.read_csv(StringIO(out))
        assert set(df["table"]) == {"table1", "table2"}
        row = df[(df["variant"] == "FCNN") & (df["n_mels"] == 40) & (df["metric"] == "overall")].iloc[0]
        assert row["mean_pct"] == pytest.approx(71.0) and row["paper_pct"] == 71.15 and row["n"] == 2
        assert len(df[df["table"] == "table1"]) == len(t1.records())
        assert (df[df["table"] == "table2"]["paper_printed"].dropna().tolist()
                == ["117K", "331K", "113K", "2,541K", "871K", "48M"])
    elif fmt == "json":
        doc = json.loads(out)
        rows = doc["table1"]["rows"]
        fcnn = next(r for r in rows if r["variant"] == "FCNN" and r["n_mels"] == 40 and r["metric"] == "unseen")
        assert fcnn["std_pct"] == pytest.approx(math.sqrt(18)) and fcnn["paper_pct"] == 59.89
        missing = next(r for r in rows if r["variant"] == "FCNN-mixup" and r["n_mels"] == 200)
        assert missing["mean_pct"] is None and "--aug mixup --mels 200" in missing["commands"]
        assert doc["table1"]["missing_commands"] == t1.commands()
        assert doc["table2"]["rows"][4]["diff_params"] == 875_000 - 871_000
    elif fmt == "latex":
        assert _balanced(out)
        stack = []
        for kind, env in re.findall(r"\\(begin|end)\{(\w+)\}", out):
            if kind == "begin":
                stack.append(env)
            else:
                assert stack and stack.pop() == env
        assert not stack
        assert r"71.00 $\pm$ 1.41" in out and r"\caption{" in out
        assert all(line.startswith("%") or "%" not in line.replace(r"\%", "") for line in out.splitlines())
    elif fmt == "markdown":
        table = [ln for ln in out.splitlines() if ln.startswith("|")]
        assert table and len({ln.count("|") for ln in table[:len(t1.display_rows()) + 2]}) == 1
        assert "| FCNN " in out and "```sh" in out
    else:
        assert "71.00 ± 1.41" in out and "FCNN-triplet" in out and "2,541K" in out


def test_table2_arithmetic_with_stand_in_counts(fake_complexity: types.ModuleType) -> None:
    t = build_table2()
    rows = {(r.arch, r.n_mels): r for r in t.rows}
    assert rows[("fcnn", 40)].diff == 160 and rows[("fcnn", 40)].agrees
    assert rows[("fcnn", 200)].diff == 4_000 and rows[("fcnn", 200)].agrees is False
    assert rows[(None, None)].params is None and rows[(None, None)].paper.printed == "48M"


# -- the command line ---------------------------------------------------------------------------
def test_cli_options_all_have_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("table", "report"):
        p = sub.choices[name]
        for action in p._actions:
            if action.dest != "help":
                assert action.help, f"harness {name} {action.option_strings} has no help"


def test_cli_table1_on_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", "--table", "1", "--results", str(tmp_path), "--format", "json", "--mels", "40"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert all(r["status"] in ("missing", "paper-only") for r in doc["table1"]["rows"])
    assert "no complete runs" in captured.err


def test_cli_table1_with_stats_on_fixture(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", "--table", "1", "--results", str(store), "--format", "csv", "--mels", "40"]) == 0
    df = pd.read_csv(StringIO(capsys.readouterr().out))
    assert set(df["table"]) == {"table1", "stats"}
    assert main(["table", "--results", str(store), "--dataset", "deadbeef"]) == 2
    assert "harness: error: no run in the results index used dataset 'deadbeef'" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_table2_with_real_complexity(capsys: pytest.CaptureFixture[str]) -> None:
    """Table 2 needs no training: the five networks are built and counted (about 25 s on 2 CPU cores)."""
    assert main(["table", "--table", "2", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["table2"]["rows"]
    measured = [r for r in rows if r["params"] is not None]
    assert [(r["arch"], r["n_mels"], r["paper_printed"]) for r in measured] == [
        ("dcase-baseline", 40, "117K"), ("subspectralnet", 40, "331K"), ("fcnn", 40, "113K"),
        ("subspectralnet", 200, "2,541K"), ("fcnn", 200, "871K")]
    assert all(r["params"] > 0 and r["macs"] > 0 and r["diff_params"] == r["params"] - r["paper_params"] for r in measured)


def test_runs_of_one_precision_fill_a_table(store: Path) -> None:
    """bf16 runs change the numbers: a table never mixes them with fp32 runs (older runs count as fp32)."""
    from harness.report.tables import select_runs

    index = load_index(store)
    fp32, _ = select_runs(index, dataset="synthetic")
    bf16 = index[index["run_id"] == "fx-FCNN-s0"].assign(run_id="fx-FCNN-bf16-s0", precision="bf16", acc_score=0.01)
    runs, sel = select_runs(pd.concat([index, bf16], ignore_index=True), dataset="synthetic")
    assert "fx-FCNN-bf16-s0" not in set(runs["run_id"]) and set(runs["run_id"]) == set(fp32["run_id"])
    assert any("precision bf16 (1)" in n and "uses fp32" in n for n in sel.notes)


def test_cli_methods_table_against_fcnn_ce(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The methods table: the methods grid's rows, no paper column, every method tested against FCNN + CE."""
    assert main(["table", "--table", "methods", "--results", str(store), "--format", "json", "--mels", "40"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {(r["variant"], r["metric"]): r for r in doc["methods"]["rows"]}
    assert rows[("FCNN", "overall")]["mean_pct"] == pytest.approx(71.0)
    assert rows[("FCNN-triplet", "unseen")]["mean_pct"] == pytest.approx(65.0)
    assert rows[("FCNN-FMS", "overall")]["status"] == "missing"
    assert all(r["paper_pct"] is None for r in doc["methods"]["rows"])
    assert any("--aug freq-mixstyle" in c for c in doc["methods"]["missing_commands"])
    assert any("--loss kd --aug none" in c and "--teacher best:subspectralnet" in c for c in doc["methods"]["missing_commands"])
    assert {(r["variant"], r["baseline"]) for r in doc["stats"]["rows"]} == {("FCNN-triplet", "FCNN")}
    assert main(["table", "--table", "methods", "--results", str(store), "--mels", "40", "--seeds", "0,1"]) == 0
    text = capsys.readouterr().out
    assert "Methods for unseen domains" in text and "paper" not in text.split("\n")[2].lower()


def test_table_of_runs_with_other_epochs(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--epochs N selects runs trained for N epochs instead of the preset's (and only those)."""
    import pandas as pd

    from harness.report.tables import build_table1, load_index

    index = load_index(store)
    short = index.assign(epochs=6)
    assert build_table1(short, mels=(40,), seeds=(0, 1)).runs.empty
    t = build_table1(short, mels=(40,), seeds=(0, 1), epochs=6)
    assert len(t.runs) == len(build_table1(index, mels=(40,), seeds=(0, 1)).runs) > 0
    assert t.selection.epochs == 6 and "the last 5 of 6 epochs" in " ".join(t.notes())
    assert build_table1(short.assign(epochs=3), mels=(40,), seeds=(0, 1), epochs=3).selection.score_last == 3
    assert all("--epochs 6" in c for c in build_table1(short.iloc[:0], mels=(40,), seeds=(0,), epochs=6).commands())
    assert build_table1(index, mels=(40,), seeds=(0, 1), epochs=6).runs.empty
    assert isinstance(short, pd.DataFrame)
