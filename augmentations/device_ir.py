"""Device impulse responses (DIR): filter clips with measured or generated device responses.

Convolving the waveform would mean re-reading audio and recomputing features for every batch.
The equivalent spectral filter is applied to the cached log-mel instead: a response adds its
per-band log gain (``harness.data.irs.mel_log_gains``) to every frame, computed once per run, so
one DIR step costs one broadcast add on the batch. It matches a direct convolution where the
response is short against the STFT window and smooth across each mel band (device responses
are; a long room response is not). Each response is centred to zero mean log gain over the
bands: it colours the clip without changing its overall level.
"""

from __future__ import annotations

import torch

from harness.contracts import AugmentContext, Augmentation
from harness.data.irs import generated_irs, load_irs, mel_log_gains
from harness.errors import ConfigError
from harness.features.logmel import LogMelExtractor
from harness.registry import register_augmentation
from harness.transfer import to_device


class DeviceIR(Augmentation):
    name = "dir"
    order = 10  # first: it stands for the recording chain

    def __init__(self, log_gains: torch.Tensor, std: torch.Tensor, p: float):
        if not 0 <= float(p) <= 1:
            raise ConfigError(f"dir: p must be in [0, 1], got {p!r}")
        self.p = float(p)
        # (n_irs, channels, n_mels, 1): each response's shift in normalised units.
        self.shift = (log_gains[:, None, :, None].to(std) / std[None]).contiguous()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        use = torch.rand(b) < self.p
        pick = torch.randint(0, self.shift.shape[0], (b,))
        if not bool(use.any()):  # drawn on the host: no device to wait for
            return x, y
        add = self.shift[to_device(pick, self.shift.device)] * to_device(use, x.device).to(x.dtype).view(b, 1, 1, 1)
        return x + add, y


@register_augmentation("dir", "device impulse responses: per clip with prob p, one response from --dir-irs (default: 8 generated mic EQs) as its spectral filter")
def dir_(ctx: AugmentContext, p: float = 0.4) -> DeviceIR:
    folder = ctx.ir_folder if ctx.ir_folder is not None else generated_irs()
    extractor = LogMelExtractor(ctx.features, ctx.sample_rate)
    gains = torch.as_tensor(mel_log_gains(load_irs(folder, extractor.sample_rate), extractor.filterbank, extractor.n_fft,
                                          ctx.features.power), dtype=torch.float32)
    gains = gains - gains.mean(dim=1, keepdim=True)
    return DeviceIR(gains, ctx.std, p)
