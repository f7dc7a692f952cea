"""Registry: name resolution, option checking, entry-point plugins and ``harness list``."""

from __future__ import annotations

import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import harness.registry as registry
from harness.cli import main
from harness.errors import ConfigError
from harness.contracts import Augmentation, Loss
from harness.registry import ARCHITECTURES, AUGMENTATIONS, LOSSES, Registry, create_architecture, create_loss

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
        from harness.contracts import Loss
        from harness.registry import register_loss

        def toy_arch(n_mels, n_frames, in_channels=2, n_classes=10, width=8):
            """Toy third-party architecture."""
            return nn.Linear(width, n_classes)

        @register_loss("toy-loss", "a loss registered on import")
        class ToyLoss(Loss):
            def __init__(self, scale=1.0):
                super().__init__()
                self.scale = scale
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
    assert isinstance(create_loss("toy-loss", scale=2), Loss)  # a class registers as its own factory


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


# -- contracts ---------------------------------------------------------------------------------
@pytest.fixture
def scratch():
    """Registries of each kind to register into, so the real ones stay as they are."""
    return {kind: Registry(reg.kind, reg.builtin_package, reg.entry_point_group, reg.flag, reg.hidden_args,
                           contract=reg.contract, _loaded=True)
            for kind, reg in (("arch", ARCHITECTURES), ("loss", LOSSES), ("aug", AUGMENTATIONS))}


class Plain:
    pass


def test_every_builtin_plugin_keeps_its_contract() -> None:
    for name in LOSSES.names():
        loss = create_loss(name)
        assert isinstance(loss, Loss) and loss.pairing in (None, "cross-domain", "any-domain")
        assert loss.needs_teacher == name.startswith("kd")
        assert loss.supports_mixup == (name == "ce")


def test_a_loss_declares_its_needs_and_they_are_checked_at_registration(scratch) -> None:
    losses = scratch["loss"]

    class Paired(Loss):
        pairing = "cross-domain"
        needs_teacher = True

    losses.register("paired")(Paired)
    assert losses.create("paired").pairing == "cross-domain"

    class Typo(Loss):
        pairing = "cross-city"

    with pytest.raises(ConfigError, match=r"loss plugin 'typo' \(.*\) breaks the loss contract: pairing must be one of"):
        losses.register("typo")(Typo)

    class Maybe(Loss):
        supports_mixup = "yes"

    with pytest.raises(ConfigError, match="supports_mixup must be True or False"):
        losses.register("maybe")(Maybe)

    def not_a_loss(scale: float = 1.0) -> Plain:
        return Plain()

    with pytest.raises(ConfigError, match=r"'not-a-loss' .*Plain is not a harness.contracts.Loss"):
        losses.register("not-a-loss")(not_a_loss)
    assert "typo" not in losses.plugins and "not-a-loss" not in losses.plugins

    def unannotated(scale=1.0):  # nothing to check until it builds
        return Plain()

    losses.register("unannotated")(unannotated)
    with pytest.raises(ConfigError, match="'unannotated' .* is not a harness.contracts.Loss"):
        losses.create("unannotated")


def test_augmentations_and_architectures_are_checked_too(scratch) -> None:
    class Bad(Augmentation):
        order = "first"

    with pytest.raises(ConfigError, match="augmentation plugin 'bad' .* order must be an integer"):
        scratch["aug"].register("bad")(Bad)

    def not_a_module(n_mels: int, n_frames: int, in_channels: int = 2, n_classes: int = 10) -> Plain:
        return Plain()

    with pytest.raises(ConfigError, match="architecture plugin 'plain' .*Plain is not a torch.nn.Module"):
        scratch["arch"].register("plain")(not_a_module)


def test_an_entry_point_plugin_that_breaks_its_contract_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad_asc_plugin.py").write_text(textwrap.dedent('''
        from torch import nn

        def bad_loss(scale: float = 1.0) -> nn.Identity:
            return nn.Identity()
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = {"harness.losses": [EntryPoint("bad-loss", "bad_asc_plugin:bad_loss", "harness.losses")]}
    monkeypatch.setattr(registry, "entry_points", lambda group: eps.get(group, []))
    LOSSES.load()
    monkeypatch.setattr(LOSSES, "plugins", dict(LOSSES.plugins))
    monkeypatch.setattr(LOSSES, "_loaded", False)
    assert main(["list", "--kind", "loss"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("harness: error: loss plugin 'bad-loss' (bad_asc_plugin)")
    assert "Identity is not a harness.contracts.Loss" in err
