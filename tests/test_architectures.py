"""Architectures: Table 2 parameter counts, shapes, pooling, init, and the rank-1 factorized conv."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from architectures.blocks import FactorizedConv2d, global_widths
from harness.errors import ConfigError
from harness.contracts import ModelOutput
from harness.model import count_parameters
from harness.registry import create_architecture

TABLE2 = [
    ("dcase-baseline", 40, 117_686),
    ("subspectralnet", 40, 331_560),
    ("fcnn", 40, 113_160),
    ("subspectralnet", 200, 2_541_384),
    ("fcnn", 200, 870_600),
]


@pytest.mark.parametrize("arch,n_mels,expected", TABLE2)
def test_table2_parameter_counts(arch: str, n_mels: int, expected: int) -> None:
    assert count_parameters(create_architecture(arch, n_mels=n_mels, n_frames=500)) == expected


def test_baseline_at_200_mels_builds() -> None:
    # Only the first dense layer grows: 200/5/4 = 10 bins × 64 channels = 640 inputs instead of 128.
    model = create_architecture("dcase-baseline", n_mels=200, n_frames=500)
    assert count_parameters(model) == 117_686 + (640 - 128) * 100


@pytest.mark.parametrize("arch", ["dcase-baseline", "subspectralnet", "fcnn"])
def test_parameter_count_does_not_depend_on_clip_length(arch: str) -> None:
    counts = {count_parameters(create_architecture(arch, n_mels=40, n_frames=t)) for t in (500, 431, 200, 12)}
    assert len(counts) == 1


def _pools(model: nn.Module) -> list[tuple[int, int]]:
    return [tuple(m.kernel_size) for m in model.modules() if isinstance(m, nn.MaxPool2d)]


def test_pooling_at_500_frames_is_the_published_one() -> None:
    assert _pools(create_architecture("dcase-baseline", n_mels=40, n_frames=500)) == [(5, 5), (4, 100)]
    assert set(_pools(create_architecture("fcnn", n_mels=40, n_frames=500))) == {(2, 5), (4, 100)}
    # 200 frames: the last pooling collapses the 40 frames left after the first.
    assert _pools(create_architecture("dcase-baseline", n_mels=40, n_frames=200)) == [(5, 5), (4, 40)]


@pytest.mark.parametrize("arch,n_mels,emb,bands", [
    ("dcase-baseline", 40, 128, None),
    ("subspectralnet", 40, 384, 3),
    ("fcnn", 40, 384, 3),
    ("subspectralnet", 200, 2432, 19),
    ("fcnn", 200, 2432, 19),
])
def test_forward_shapes(arch: str, n_mels: int, emb: int, bands: int | None) -> None:
    n_frames = 200 if n_mels == 40 else 15  # short clips keep the 200-mel forward cheap
    model = create_architecture(arch, n_mels=n_mels, n_frames=n_frames).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 2, n_mels, n_frames))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (3, 10)
    assert out.embedding.shape == (3, emb)
    if bands is None:
        assert out.band_logits is None
    else:
        assert out.band_logits.shape == (3, bands, 10)


def test_sub_band_sees_only_its_mel_bins() -> None:
    model = create_architecture("subspectralnet", n_mels=40, n_frames=20).eval()
    x = torch.randn(2, 2, 40, 20)
    y = x.clone()
    y[:, :, 20:] = torch.randn(2, 2, 20, 20)  # band 0 covers bins 0-19, band 1 10-29, band 2 20-39
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.equal(a.band_logits[:, 0], b.band_logits[:, 0])
    assert not torch.allclose(a.band_logits[:, 1], b.band_logits[:, 1])
    assert torch.equal(a.embedding[:, :128], b.embedding[:, :128])


def test_fcnn_channels_follow_the_paper_and_the_option() -> None:
    def widths(model: nn.Module) -> list[int]:
        return [m.freq.out_channels for m in model.trunks[0].modules() if isinstance(m, FactorizedConv2d)]

    assert widths(create_architecture("fcnn", n_mels=40, n_frames=20)) == [64, 64]
    assert widths(create_architecture("fcnn", n_mels=200, n_frames=20)) == [32, 64]
    assert widths(create_architecture("fcnn", n_mels=40, n_frames=20, channels="16,32")) == [16, 32]
    assert widths(create_architecture("fcnn", n_mels=40, n_frames=20, channels=[8, 8])) == [8, 8]


def test_kernel_size_option() -> None:
    model = create_architecture("fcnn", n_mels=40, n_frames=20, kernel_size=3)
    conv = next(m for m in model.modules() if isinstance(m, FactorizedConv2d))
    assert conv.freq.kernel_size == (3, 1) and conv.time.kernel_size == (1, 3)


def test_global_classifier_widths() -> None:
    assert global_widths(96) == [64]
    assert global_widths(608) == [512, 256, 128, 64]


@pytest.mark.parametrize("kwargs,fragment", [
    ({"arch": "fcnn", "n_mels": 40, "n_frames": 4}, "frames"),
    ({"arch": "dcase-baseline", "n_mels": 40, "n_frames": 4}, "frames"),
    ({"arch": "dcase-baseline", "n_mels": 19, "n_frames": 500}, "mel"),
    ({"arch": "subspectralnet", "n_mels": 16, "n_frames": 500}, "sub-band size"),
    ({"arch": "fcnn", "n_mels": 40, "n_frames": 500, "kernel_size": 6}, "odd"),
    ({"arch": "fcnn", "n_mels": 40, "n_frames": 500, "channels": "64"}, "channels"),
    ({"arch": "fcnn", "n_mels": 40, "n_frames": 500, "conv_impl": "fast?"}, "impl"),
    ({"arch": "fcnn", "n_mels": 40, "n_frames": 500, "dropout": 1.5}, "dropout"),
])
def test_impossible_configurations_are_one_line_errors(kwargs: dict, fragment: str) -> None:
    arch = kwargs.pop("arch")
    with pytest.raises(ConfigError, match=fragment) as err:
        create_architecture(arch, **kwargs)
    assert "\n" not in str(err.value)


def test_input_length_mismatch_is_a_clear_error() -> None:
    model = create_architecture("fcnn", n_mels=40, n_frames=500)
    with pytest.raises(ConfigError, match="n_frames=500"):
        model(torch.randn(1, 2, 40, 200))


def test_initialisation_is_kaiming_and_xavier_normal() -> None:
    torch.manual_seed(0)
    model = create_architecture("dcase-baseline", n_mels=40, n_frames=500)
    conv2 = model.trunk.block2[0]  # 32→64, 7×7: fan_in 1568, ~100k weights
    assert conv2.weight.std().item() == pytest.approx(math.sqrt(2 / (32 * 49)), rel=0.03)
    dense = model.head[0]  # 128→100
    assert dense.weight.std().item() == pytest.approx(math.sqrt(2 / (128 + 100)), rel=0.05)
    biases = [m.bias for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(torch.count_nonzero(b) == 0 for b in biases)


# -- the factorized convolution ------------------------------------------------------------
def _random_factorized(cin: int, cout: int, k: int) -> FactorizedConv2d:
    torch.manual_seed(1)
    conv = FactorizedConv2d(cin, cout, k).double()
    for p in conv.parameters():
        nn.init.normal_(p)
    return conv


def test_dense_kernel_is_rank_one_per_channel_pair() -> None:
    kernel = _random_factorized(3, 4, 7).dense_kernel()
    assert kernel.shape == (4, 3, 7, 7)
    ranks = torch.linalg.matrix_rank(kernel.reshape(-1, 7, 7))
    assert (ranks == 1).all()


def test_dense_kernel_reproduces_the_factorized_conv_without_biases() -> None:
    conv = _random_factorized(3, 5, 7)
    with torch.no_grad():
        conv.freq.bias.zero_()
        conv.time.bias.zero_()
    plain = nn.Conv2d(3, 5, 7, padding=3, bias=False).double()
    with torch.no_grad():
        plain.weight.copy_(conv.dense_kernel())
    x = torch.randn(2, 3, 16, 23, dtype=torch.float64)
    torch.testing.assert_close(conv(x), plain(x))


def test_dense_kernel_with_biases_matches_inside_and_at_the_time_edges() -> None:
    conv = _random_factorized(2, 4, 7)
    x = torch.randn(2, 2, 12, 30, dtype=torch.float64)
    with torch.no_grad():
        y = conv(x)
        dense = F.conv2d(x, conv.dense_kernel(), conv.dense_bias(), padding=3)
        # Away from the time edges the folded bias is exact.
        torch.testing.assert_close(y[..., 3:-3], dense[..., 3:-3])
        # At the edges the first conv's bias is cut by the zero padding: not the folded value...
        assert not torch.allclose(y[..., :3], dense[..., :3])
        # ...but exactly the dense conv plus the bias map.
        exact = F.conv2d(x, conv.dense_kernel(), None, padding=3) + conv.bias_map(30)
        torch.testing.assert_close(y, exact)


# -- timm ------------------------------------------------------------------------------------
def test_timm_backbone_on_a_small_input() -> None:
    model = create_architecture("timm/resnet18", n_mels=40, n_frames=64, in_channels=2, n_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 2, 40, 64))
    assert out.logits.shape == (2, 10)
    assert out.embedding.shape == (2, 512)
    assert out.band_logits is None


def test_timm_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match="resnet18") as err:
        create_architecture("timm/resnet1", n_mels=40, n_frames=64)
    assert "\n" not in str(err.value)


# -- complexity ----------------------------------------------------------------------------
@pytest.mark.parametrize("arch,expected_macs", [("dcase-baseline", 148e6), ("fcnn", 145e6)])
def test_macs_per_clip_match_the_reference(arch: str, expected_macs: float) -> None:
    from harness.complexity import TABLE2_CONFIGS, measure

    c = measure(arch, 40)
    assert c.params == dict(((a, m), n) for a, m, n in TABLE2)[(arch, 40)]
    assert c.macs == pytest.approx(expected_macs, rel=0.01)
    assert c.macs_conv_linear < c.macs
    assert [(a, m) for a, m, _ in TABLE2] == TABLE2_CONFIGS
