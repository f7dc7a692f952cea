"""Hostile or careless values: run ids that are paths, labels with control characters or formula
starts, empty values, impossible combinations, and one setting spelt two ways in a file and a flag."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.features.logmel import check_mel_bands, feature_preset
from harness.inference.predict import submission, text_cell

from test_failures import one_line_error


# -- run ids are names -------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["predict", "{ref}", "--data", "x"], ["export", "{ref}", "--format", "onnx"],
                                     ["evaluate", "{ref}"]])
@pytest.mark.parametrize("ref", ["../../other/runs/r1", "{abs}", "..", "a/b", "r1\n"])
def test_a_run_id_is_a_name_never_a_path(command, ref: str, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other" / "runs" / "r1"  # a real run folder outside --results: still refused
    other.mkdir(parents=True)
    results = tmp_path / "a" / "b" / "results"
    results.mkdir(parents=True)
    ref = ref.format(abs=str(other))
    argv = [a.format(ref=ref) for a in command]
    assert main([*argv, "--results", str(results)]) == 2
    one_line_error(capsys, "is not a run id")
    assert list(other.iterdir()) == []  # nothing written there


def test_a_teacher_is_a_run_id_too(tmp_path: Path) -> None:
    from harness.results.store import ResultsStore

    with pytest.raises(ConfigError, match="is not a run id"):
        ResultsStore(tmp_path).run_dir("../elsewhere")


# -- labels ------------------------------------------------------------------------------------
def _manifest(folder: Path, tiny_synth: Path, labels: list[str]) -> Path:
    wavs = sorted((tiny_synth / "audio").glob("*.wav"))[: len(labels)]
    for w in wavs:
        shutil.copy(w, folder / w.name)
    lines = ["filename,label"] + [f"{w.name},{label}" for w, label in zip(wavs, labels)]
    path = folder / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("label, shown", [('"a\tb"', r"'a\tb'"), ('"a\nb"', r"'a\nb'"), ('"x\x07"', r"'x\x07'")])
def test_a_label_with_a_control_character_is_refused_at_load(label: str, shown: str, tiny_synth: Path, tmp_path: Path,
                                                             capsys) -> None:
    path = _manifest(tmp_path, tiny_synth, ["park", "bus", label, "park"])
    assert main(["data", "info", str(path)]) == 2
    line = one_line_error(capsys, str(path), "line 4: label", "control character")
    assert shown in line


def test_submission_cells_never_start_a_formula() -> None:
    classes = ["=HYPERLINK(\"x\")", "+1", "-", "@sum", "park"]
    logits = np.eye(5)[[0, 2, 4]] * 5
    df = submission(["-a.wav", "audio/1.wav", "=b.wav"], classes, logits)
    cells = [*map(str, df.columns), *df["filename"], *df["scene_label"]]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))], cells
    assert list(df.columns[2:]) == ["'=HYPERLINK(\"x\")", "'+1", "'-", "'@sum", "park"]
    assert list(df["scene_label"]) == ["'=HYPERLINK(\"x\")", "'-", "park"] and df["filename"][0] == "'-a.wav"
    assert text_cell("audio/street.wav") == "audio/street.wav"  # DCASE names are left as they are
    assert np.allclose(df.iloc[:, 2:].sum(axis=1), 1.0)


# -- empty values ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, flag", [
    (["run", "--split", ""], "--split"),
    (["run", "--results", ""], "--results"),
    (["run", "--data", " "], "--data"),
    (["run", "--data-opt", "classes="], "--data-opt classes="),
    (["run", "--arch-opt", "channels="], "--arch-opt channels="),
    (["grid", "--split", ""], "--split"),
    (["tune", "--study", ""], "--study"),
    (["table", "--results", ""], "--results"),
    (["predict", "", "--data", "x"], "RUN"),
])
def test_an_empty_value_is_refused(argv, flag: str, capsys) -> None:
    assert main(argv) == 2
    one_line_error(capsys, flag, "empty value")


def test_an_empty_value_in_an_experiment_file_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "exp.toml"
    path.write_text('split = ""\n')
    assert main(["run", "--config", str(path), "--dump-config"]) == 2
    one_line_error(capsys, str(path), "key 'split' is empty")


# -- impossible combinations -------------------------------------------------------------------
@pytest.mark.parametrize("argv, file", [
    (["run", "--warmup-epochs", "5", "--epochs", "1"], None),
    (["run", "--preset", "dcase2024", "--epochs", "3"], None),  # the preset's 4 warm-up epochs
    (["run", "--epochs", "1"], "warmup-epochs = 5\n"),
    (["tune", "--warmup-epochs", "5", "--epochs", "1"], None),
    (["grid", "--epochs", "1", "--variants", "FCNN", "--mels", "40", "--dry-run"], "warmup-epochs = 5\n"),
])
def test_warmup_longer_than_the_run_is_refused(argv, file, tmp_path: Path, capsys) -> None:
    extra = []
    if file:
        (tmp_path / "exp.toml").write_text(file)
        extra = ["--config", str(tmp_path / "exp.toml")]
    assert main([*argv, *extra, "--data", str(tmp_path / "no-data"), "--results", str(tmp_path / "r")]) == 2
    one_line_error(capsys, "--warmup-epochs", "must be shorter than the run")


def test_more_mel_bands_than_the_fft_resolves_are_refused(tiny_synth: Path, tmp_path: Path, capsys) -> None:
    assert main(["run", "--data", str(tiny_synth), "--mels", "2000", "--results", str(tmp_path), "--epochs", "1"]) == 2
    line = one_line_error(capsys, "--mels 2000", "8000 Hz", "512-point FFT", "give --mels 171 or fewer")
    assert "Warning" not in line and not (tmp_path / "runs").exists()
    check_mel_bands(feature_preset("dcase2019", 171), 8000)  # the limit itself is accepted
    check_mel_bands(feature_preset("dcase2019", 200), 48000)  # the paper's 200 bands at 48 kHz
    check_mel_bands(feature_preset("dcase2024"), 32000)  # the DCASE 2024 front end's 256
    with pytest.raises(ConfigError, match="give --mels 570 or fewer"):
        check_mel_bands(feature_preset("dcase2024", 2000), 44100)  # resampled to 32 kHz first


# -- one setting spelt twice -------------------------------------------------------------------
def _dump(argv: list[str], capsys) -> str:
    assert main([*argv, "--dump-config"]) == 0
    return capsys.readouterr().out


def test_the_command_line_overrides_the_file_whichever_spelling_each_uses(tmp_path: Path, capsys) -> None:
    import tomllib

    path = tmp_path / "exp.toml"
    path.write_text('loss = "triplet-city"\nalpha = 0.5\n')
    out = tomllib.loads(_dump(["run", "--config", str(path), "--loss-opt", "alpha=0.3"], capsys))
    assert "alpha" not in out and out["loss-opt"] == {"alpha": 0.3}
    path.write_text('loss = "triplet-city"\nloss-opt = {alpha = 0.3, gamma = 2}\n')
    out = tomllib.loads(_dump(["run", "--config", str(path), "--alpha", "0.5"], capsys))
    assert out["alpha"] == 0.5 and out["loss-opt"] == {"gamma": 2}


def test_one_setting_spelt_twice_in_a_file_names_the_file_and_keys(tmp_path: Path, capsys) -> None:
    path = tmp_path / "exp.toml"
    path.write_text('loss = "triplet-city"\nalpha = 0.5\nloss-opt = {alpha = 0.3}\n')
    assert main(["run", "--config", str(path), "--dump-config"]) == 2
    one_line_error(capsys, str(path), "keys 'alpha' (0.5) and 'loss-opt' (alpha=0.3) set one option to two values")
    path.write_text('loss = "triplet-city"\nalpha = 0.3\nloss-opt = {alpha = 0.3}\n')  # the same value twice: fine
    assert main(["run", "--config", str(path), "--dump-config"]) == 0
