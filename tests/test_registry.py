"""Registry: name resolution, option checking, entry-point plugins and ``harness list``."""

from __future__ import annotations

import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import harness.registry as registry
from harness.cli import main
from harness.errors import ConfigError
from harness.registry import ARCHITECTURES, LOSSES, create_architecture, create_loss

BUILTIN = ["dcase-baseline", "subspectralnet", "fcnn", "ce", "triplet-city", "triplet-random", "triplet-device"]


def test_unknown_name_lists_known_names_and_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as err:
        create_architecture("fcn", n_mels=40, n_frames=500)
    msg = str(err.value)
    assert "\n" not in msg
    assert "did you mean 'fcnn'" in msg
    assert all(n in msg for n in ("dcase-baseline", "subspectralnet", "timm/<name>"))
    with pytest.raises(ConfigError, match="did you mean 'triplet-city'"):
        create_loss("triplet-cty")


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(ConfigError, match="no option 'width'"):
        create_architecture("fcnn", n_mels=40, n_frames=500, width=3)
    with pytest.raises(ConfigError, match="no option 'alpha'"):
        create_loss("ce", alpha=0.2)


def test_none_options_are_dropped() -> None:
    create_loss("ce", alpha=None, gamma=None)
    loss = create_loss("triplet-city", alpha=None, gamma=3.0)
    assert (loss.alpha, loss.gamma) == (0.2, 3.0)
    model = create_architecture("fcnn", n_mels=40, n_frames=20, channels=None, dropout=None)
    assert model.trunks[0].drop1.p == 0.3


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A plugin package on sys.path, announced through patched entry points (as an installed dist would)."""
    (tmp_path / "toy_asc_plugin.py").write_text(textwrap.dedent('''
        """A third-party architecture and loss."""
        from torch import nn
        from harness.registry import register_loss

        def toy_arch(n_mels, n_frames, in_channels=2, n_classes=10, width=8):
            """Toy third-party architecture."""
            return nn.Linear(width, n_classes)

        @register_loss("toy-loss", "a loss registered on import")
        def toy_loss(scale=1.0):
            return nn.Identity()
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = {
        "harness.architectures": [
            EntryPoint("toy-arch", "toy_asc_plugin:toy_arch", "harness.architectures"),
            EntryPoint("broken", "no_such_module_xyz:thing", "harness.architectures"),
        ],
        "harness.losses": [EntryPoint("toy", "toy_asc_plugin", "harness.losses")],
    }
    monkeypatch.setattr(registry, "entry_points", lambda group: eps.get(group, []))
    for reg in (ARCHITECTURES, LOSSES):  # rediscover into copies, restored after the test
        reg.load()
        monkeypatch.setattr(reg, "plugins", dict(reg.plugins))
        monkeypatch.setattr(reg, "_loaded", False)
    yield
    import sys
    sys.modules.pop("toy_asc_plugin", None)


def test_entry_point_plugins_are_discovered(third_party, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(UserWarning, match="'broken' failed to load"):
        model = create_architecture("toy-arch", n_mels=40, n_frames=500, width=4)
    assert model.in_features == 4
    assert "toy-loss" in LOSSES.names()  # module entry point: registered itself on import
    assert all(n in ARCHITECTURES.names() + LOSSES.names() for n in BUILTIN)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "toy-arch" in out and "width: int = 8" in out and "toy_asc_plugin" in out
    assert "toy-loss" in out and "scale: float = 1.0" in out


def test_harness_list_shows_every_plugin_with_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in BUILTIN + ["timm/<model>"]:
        assert name in out
    assert "kernel_size: int = 7" in out and "alpha: float = 0.2" in out and "gamma: float = 10.0" in out
    assert "channels: int×2 = (32, 64)" in out  # types as --arch-opt parses them
    assert "harness.architectures" in out and "harness.losses" in out
    assert main(["list", "--kind", "loss"]) == 0
    out = capsys.readouterr().out
    assert "triplet-city" in out and "subspectralnet" not in out
