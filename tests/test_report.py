"""``harness report`` and its measures, on a FABRICATED results store (tests/fixtures_store.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures_store import clips, embeddings, write_store
from harness.cli import main
from harness.report import figures as fg
from harness.report.page import ReportOptions, build_report

PNG = b"\x89PNG\r\n\x1a\n"


def test_silhouette_by_hand() -> None:
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    # a = 1 for every point; b = 10.5 for the outer two, 9.5 for the inner two.
    expected = (9.5 / 10.5 + 8.5 / 9.5) / 2
    assert fg.silhouette(x, np.array(["a", "a", "b", "b"])) == pytest.approx(expected)
    # A point alone in its cluster scores 0 (sklearn's convention).
    single = fg.silhouette(np.array([[0.0], [1.0], [5.0]]), np.array([0, 0, 1]))
    assert single == pytest.approx(((5 - 1) / 5 + (4 - 1) / 4 + 0) / 3)  # b = 5 and 4, a = 1
    assert np.isnan(fg.silhouette(x, np.zeros(4)))


def test_distances_match_scipy() -> None:
    from scipy.spatial.distance import pdist, squareform

    x = np.random.default_rng(0).normal(size=(40, 300)).astype(np.float32) + 50  # offset: cancellation-prone
    assert np.allclose(fg.distances(x), squareform(pdist(x.astype(np.float64))), atol=1e-6)


def test_distance_ratio_by_hand() -> None:
    x = np.array([[0.0], [1.0], [3.0], [100.0]])
    scenes, cities = np.array([0, 0, 0, 1]), np.array(["p", "p", "q", "p"])
    # same scene & same city: |0-1| = 1; same scene, different city: |0-3|, |1-3| -> 2.5
    assert fg.distance_ratio(x, scenes, cities) == pytest.approx(2.5)


def test_pca_recovers_a_line() -> None:
    t = np.linspace(-1, 1, 21)
    x = np.stack([t, 2 * t, -t], axis=1) + 5
    p = fg.pca2(x)
    assert np.allclose(np.abs(p[:, 0]), np.abs(t) * np.sqrt(6)) and np.allclose(p[:, 1], 0, atol=1e-9)


def test_invariance_separates_city_from_scene_clusters() -> None:
    c = clips()
    ce = fg.invariance(embeddings(c, "city", 0), c.labels, c.cities)
    tri = fg.invariance(embeddings(c, "scene", 0), c.labels, c.cities)
    assert tri.silhouette_scene > 0.5 > ce.silhouette_scene
    assert ce.silhouette_city > 0.5 > tri.silhouette_city
    assert ce.distance_ratio > tri.distance_ratio > 1
    sub = fg.invariance(embeddings(c, "scene", 0), c.labels, c.cities, max_points=50)
    assert sub.n == 50


def test_confusion_counts() -> None:
    cm = fg.confusion(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_report_on_fixture_store(tmp_path: Path) -> None:
    store = write_store(tmp_path / "results")
    out = tmp_path / "report"
    report = build_report(ReportOptions(results=store, out=out, mels=(40,), table2=False, n_resamples=500))
    md = report.path.read_text()
    assert report.path == out / "report.md"
    for heading in ("Table 1", "Significance", "City invariance", "Figure 1 measured", "Accuracy per city",
                    "Learning curves", "Confusion matrices"):
        assert heading in md, heading
    assert "71.00 ± 1.41" in md and "missing" in md and "harness run --arch fcnn --loss ce --aug mixup" in md
    links = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert len(links) == len(report.figures) == 7  # 4 confusion + cities + curves + projection
    for link in links:
        assert (out / link).read_bytes()[:8] == PNG
    doc = json.loads((out / "tables.json").read_text())
    inv = {(r["variant"], r["seed"]): r for r in doc["invariance"]["rows"]}
    assert inv[("FCNN-triplet", 0)]["silhouette_scene"] > inv[("FCNN", 0)]["silhouette_scene"]
    assert (out / "tables.csv").read_text().startswith("table,")
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_report_on_empty_store_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "none").mkdir()  # an empty store (a missing one is an error: tests/test_failures.py)
    assert main(["report", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "r"), "--no-table2", "--mels", "40"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "no complete runs" in md and "harness run --arch subspectralnet" in md
    assert "wrote" in capsys.readouterr().out
    assert not (tmp_path / "r" / "figures").exists()
