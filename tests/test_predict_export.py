"""``harness predict`` on generated unlabelled folders and ``harness export`` parity (ONNX, TorchScript)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from harness.cli import main
from harness.inference.predict import find_clips, score
from harness.inference.trained import open_run
from harness.runner.config import RunConfig
from harness.runner.contract import FILE, Preprocessing
from harness.runner.train import run

pytestmark = pytest.mark.slow  # trains one tiny model for the module


@pytest.fixture(scope="module")
def trained(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    results = tmp_path_factory.mktemp("results")
    cfg = RunConfig(arch="fcnn", loss="ce", data=str(tiny_synth), epochs=2, batch_size=16, device="cpu", seed=0)
    return results, run(cfg, results, progress=False)


@pytest.fixture(scope="module")
def stored(trained: tuple[Path, dict]) -> dict[str, np.ndarray]:
    results, s = trained
    with np.load(results / s["run_dir"] / "predictions.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def eval_folder(tiny_synth: Path, stored: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A TAU-evaluation-style folder without labels: 30 evaluate clips renamed audio/<i>.wav, listed in fold1_test.csv.

    Returns the folder and the row of each listed clip in the run's stored predictions.
    """
    root = tmp_path_factory.mktemp("eval") / "TAU-urban-acoustic-scenes-2019-evaluation"
    (root / "audio").mkdir(parents=True)
    (root / "evaluation_setup").mkdir()
    rows = np.flatnonzero(stored["official"])[::-1][:30]  # reversed: the listing order is not the run's order
    for i, r in enumerate(rows):
        shutil.copy(tiny_synth / str(stored["filenames"][r]), root / "audio" / f"{i}.wav")
    (root / "evaluation_setup" / "fold1_test.csv").write_text("filename\n" + "".join(f"audio/{i}.wav\n" for i in range(len(rows))))
    (root / "audio" / "not-listed.wav").write_bytes(b"only files in the list are scored")
    return root, rows


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_predict_tau_evaluation_layout(trained, stored, eval_folder, tmp_path: Path, capsys) -> None:
    results, s = trained
    root, rows = eval_folder
    out = tmp_path / "sub" / "harness_x_task1_1.output.csv"
    assert main(["predict", s["run_id"][:12], "--data", str(root), "--results", str(results), "--out", str(out), "--no-progress"]) == 0
    assert str(out) in capsys.readouterr().out
    classes = [str(c) for c in stored["classes"]]
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == ["filename", "scene_label", *classes]  # the DCASE Task 1 output header
    df = pd.read_csv(out, sep="\t")
    assert list(df["filename"]) == [f"audio/{i}.wav" for i in range(len(rows))]
    prob = df[classes].to_numpy()
    assert np.allclose(prob.sum(axis=1), 1.0, atol=1e-5)
    assert list(df["scene_label"]) == [classes[j] for j in prob.argmax(axis=1)]
    # The run's own features, rounding and normalisation: the same probabilities it stored for these clips.
    assert np.allclose(prob, softmax(stored["logits"][rows].astype(np.float64)), atol=2e-6)


def test_predict_any_folder_of_wavs(trained, stored, tiny_synth: Path, tmp_path: Path) -> None:
    results, s = trained
    folder = tmp_path / "field recordings"
    (folder / "day2").mkdir(parents=True)
    rows = np.flatnonzero(stored["official"])[:5]
    names = ["a.wav", "b.WAV", "day2/c.wav", "day2/d.wav", "e.wav"]
    for name, r in zip(names, rows):
        shutil.copy(tiny_synth / str(stored["filenames"][r]), folder / name)
    (folder / "notes.txt").write_text("not audio")
    assert main(["predict", s["run_id"], "--data", str(folder), "--results", str(results), "--no-progress"]) == 0
    out = results / s["run_dir"] / "predict" / "field recordings.output.csv"
    df = pd.read_csv(out, sep="\t")
    order = np.argsort(names)
    assert list(df["filename"]) == sorted(names)
    classes = [str(c) for c in stored["classes"]]
    assert np.allclose(df[classes].to_numpy(), softmax(stored["logits"][rows[order]].astype(np.float64)), atol=2e-6)


def _bad_cases(root: Path, tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (extra CLI args, text the error must contain)."""
    wrong_rate = tmp / "rate"
    wrong_rate.mkdir()
    x, sr = sf.read(root / "audio" / "0.wav", dtype="float32")
    sf.write(wrong_rate / "x.wav", x, sr * 2)
    corrupt = tmp / "corrupt"
    corrupt.mkdir()
    shutil.copy(root / "audio" / "0.wav", corrupt / "ok.wav")
    (corrupt / "z.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    short = tmp / "short"
    short.mkdir()
    sf.write(short / "x.wav", x[: len(x) // 2], sr)
    header = tmp / "header"
    (header / "evaluation_setup").mkdir(parents=True)
    (header / "evaluation_setup" / "fold1_test.csv").write_text("file\tscene_label\naudio/0.wav\tbus\n")
    missing = tmp / "missing"
    (missing / "evaluation_setup").mkdir(parents=True)
    (missing / "evaluation_setup" / "fold1_test.csv").write_text("filename\naudio/404.wav\n")
    (tmp / "empty").mkdir()
    return {
        "no folder": (["--data", str(tmp / "nowhere")], "evaluation folder not found"),
        "empty folder": (["--data", str(tmp / "empty")], "no evaluation_setup/fold1_test.csv and no .wav files"),
        "wrong rate": (["--data", str(wrong_rate)], f"{wrong_rate / 'x.wav'}: is 2 channel(s), {2 * sr} Hz"),
        "corrupt": (["--data", str(corrupt)], f"{corrupt / 'z.wav'}: unreadable or corrupt WAV"),
        "short": (["--data", str(short)], "samples; the model was trained on"),
        "header": (["--data", str(header)], "wrong header: expected 'filename'"),
        "missing": (["--data", str(missing)], f"{missing / 'audio' / '404.wav'}: audio file listed in the metadata is missing"),
    }


def test_predict_bad_input_is_one_line(trained, eval_folder, tmp_path: Path, capsys) -> None:
    results, s = trained
    root, _ = eval_folder
    out = tmp_path / "out.csv"
    for name, (args, text) in _bad_cases(root, tmp_path).items():
        rc = main(["predict", s["run_id"], *args, "--results", str(results), "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("harness: error: ") and err.count("\n") == 1, (name, err)
        assert text in err, (name, err)
        assert not out.exists(), name
    for run_name, text in [("fcnn-ce-nonexistent", "unknown run 'fcnn-ce-nonexistent'"), ("fcnn", "is ambiguous")]:
        (results / "runs" / "fcnn-ce-other-m40-s9-0000000000").mkdir(exist_ok=True)  # an incomplete run beside the real one
        assert main(["predict", run_name, "--data", str(root), "--results", str(results), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert text in err and err.count("\n") == 1, err
    assert main(["predict", "fcnn-ce-other", "--data", str(root), "--results", str(results), "--out", str(out)]) == 2
    assert "run is not complete" in capsys.readouterr().err
    shutil.rmtree(results / "runs" / "fcnn-ce-other-m40-s9-0000000000")
    assert not out.exists()


def test_contract_is_rebuilt_for_runs_stored_without_it(trained, tmp_path: Path) -> None:
    results, s = trained
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    original = Preprocessing.read(copy / s["run_dir"] / FILE)
    (copy / s["run_dir"] / FILE).unlink()
    rebuilt = open_run(copy, s["run_id"]).preprocessing
    assert (copy / s["run_dir"] / FILE).exists()
    assert rebuilt.classes == original.classes and rebuilt.features == original.features
    assert np.allclose(rebuilt.mean, original.mean) and np.allclose(rebuilt.std, original.std)
    assert np.asarray(original.mean).shape == (2, 40)


def _inputs(results: Path, run_id: str, folder: Path) -> tuple[torch.Tensor, np.ndarray]:
    """The model inputs of the folder's clips and the harness's own logits for them."""
    from harness.features.cache import load_features

    r = open_run(results, run_id)
    pre = r.preprocessing
    clips = find_clips(folder, pre.sample_rate, pre.channels, pre.clip_samples)
    x = pre.normalize(load_features(clips, pre.feature_config, progress=False))
    return x, score(r, clips, progress=False, precision="fp32")  # an exported graph is float32


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_the_harness(fmt: str, trained, eval_folder, tmp_path: Path, capsys) -> None:
    results, s = trained
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
        pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    assert main(["export", s["run_id"], "--format", fmt, "--results", str(results), "--out", str(tmp_path)]) == 0
    assert "checked: max |logit difference|" in capsys.readouterr().out
    model = tmp_path / f"{s['run_id']}{'.onnx' if fmt == 'onnx' else '.pt'}"
    contract = json.loads((tmp_path / f"{s['run_id']}.preprocessing.json").read_text())
    pre = open_run(results, s["run_id"]).preprocessing
    assert contract["model_file"] == model.name and contract["classes"] == pre.classes
    assert contract["mean"] == pre.mean and contract["features"]["n_mels"] == 40
    x, harness_logits = _inputs(results, s["run_id"], eval_folder[0])
    if fmt == "onnx":
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        got = session.run(["logits"], {"features": x.numpy()})[0]
    else:
        got = torch.jit.load(str(model))(x).detach().numpy()
    assert got.shape == harness_logits.shape == (30, len(pre.classes))
    # The harness scores with the fused CPU kernel, the exported graph is the reference definition.
    np.testing.assert_allclose(got, harness_logits, rtol=1e-4, atol=1e-4)
    assert (got.argmax(axis=1) == harness_logits.argmax(axis=1)).all()


def test_export_unknown_run_is_one_line(trained, capsys) -> None:
    results, _ = trained
    assert main(["export", "nope", "--format", "torchscript", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness: error: ") and "unknown run 'nope'" in err and err.count("\n") == 1
