"""``harness data``: write the synthetic dataset, describe a dataset, precompute features."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from tabulate import tabulate

from harness.data.registry import DEFAULT_DATA
from harness.errors import ConfigError
from harness.flags import mels_list
from harness.options import number_type

_COUNT = number_type(integer=True, minimum=1)


def cmd_synth_mobile(args: argparse.Namespace) -> int:
    from harness.data.synthetic import tau2022 as sm

    overrides = {"seed": args.seed, "sample_rate": args.sample_rate, "locations_per_scene_city": args.locations,
                 "city_shift": args.city_shift, "device_shift": args.device_shift}
    cfg = sm.MobileSynthConfig(**{k: v for k, v in overrides.items() if v is not None})
    out = Path(args.out) / sm.DATASET_DIRNAME if args.out else Path(sm.DATASET_DIRNAME)
    root = sm.generate(cfg, out, progress=not args.no_progress, overwrite=args.overwrite)
    print(f"wrote a synthetic TAU 2022 Mobile-layout dataset to {root} (DCASE 2024 split files in {root / sm.SPLITS_DIRNAME})")
    print(f"use it with: harness run --data {shlex.quote(str(root))} --subset 25 --arch dcase2024-baseline --features dcase2024")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from harness.data.synthetic.plugin import default_config
    from harness.data.synthetic.tau2019 import DATASET_DIRNAME, generate
    from harness.data.synthetic.world import SynthConfig

    if args.preset == "tau2022":
        if args.tau_format or args.seconds is not None or args.segments is not None or args.location_spread is not None:
            raise ConfigError("--preset tau2022 writes 1-s mono clips; --tau-format, --seconds, --segments and "
                              "--location-spread apply to the 2019 layout only")
        return cmd_synth_mobile(args)
    if args.device_shift is not None:
        raise ConfigError("--device-shift applies to --preset tau2022 only")
    base = SynthConfig.tau_format() if args.tau_format else default_config()
    overrides = {
        "seed": args.seed, "sample_rate": args.sample_rate, "seconds": args.seconds,
        "locations_per_scene_city": args.locations, "segments_per_location": args.segments,
        "city_shift": args.city_shift, "location_spread": args.location_spread,
    }
    cfg = SynthConfig(**{**base.to_dict(), **{k: v for k, v in overrides.items() if v is not None},
                         "cities": base.cities, "scenes": base.scenes})
    out = Path(args.out) / DATASET_DIRNAME if args.out else Path(DATASET_DIRNAME)
    root = generate(cfg, out, progress=not args.no_progress, overwrite=args.overwrite)
    print(f"wrote a synthetic TAU 2019-layout dataset to {root}")
    print(f"use it with: harness run --data {shlex.quote(str(root))}")
    return 0


def _open(args: argparse.Namespace):
    from harness.flags import open_data

    args.data = args.path
    return open_data(args)


def cmd_info(args: argparse.Namespace) -> int:
    from harness.data.summary import describe, summary_text

    ds = _open(args)
    print(summary_text(ds))
    print()
    table = describe(ds)
    print(tabulate(table.reset_index(), headers="keys", tablefmt="simple", showindex=False))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from harness.features.cache import feature_path, load_features
    from harness.features.logmel import FeatureConfig

    ds = _open(args)
    for mels in args.mels:
        cfg = FeatureConfig(n_mels=mels)
        feats = load_features(ds, cfg, progress=not args.no_progress)
        print(f"{mels} mels: {feats.shape} {feats.dtype} at {feature_path(ds, cfg)}")
    return 0


def _dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", metavar="NAME", help="read the folder with this dataset plugin instead of detecting the layout")
    p.add_argument("--subset", help="a subset the dataset plugin defines, e.g. esc10 for esc50, 5|10|25|50|100 for tau2022-mobile")
    p.add_argument("--data-opt", action="append", metavar="KEY=VALUE", help="dataset plugin option, repeatable")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="synthetic dataset, dataset info, feature cache",
                       description="Write the synthetic TAU-layout dataset, describe a dataset, or precompute its log-mel features.")
    dsub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    s = dsub.add_parser("synth", help="write a synthetic dataset in TAU Urban Acoustic Scenes 2019 (or 2022 Mobile) layout",
                        description="Write a synthetic dataset in the exact TAU 2019 development layout (meta.csv, "
                                    "evaluation_setup/fold1_*.csv, audio/*.wav, README.md) that the real loader reads "
                                    "unchanged. Without options it writes the embedded default dataset's configuration.")
    s.add_argument("--preset", choices=["tau2019", "tau2022"], default="tau2019",
                   help="tau2019: the 2019 development layout (default); tau2022: the 2022 Mobile layout, 1-s mono "
                        "44.1 kHz clips from recordings heard through devices a, b, c, s1-s6 (s4-s6 only in the test "
                        "split), with DCASE 2024-style split5/10/25/50/100.csv and test.csv in split_setup/")
    s.add_argument("--out", help="parent folder; the dataset goes to OUT/TAU-urban-acoustic-scenes-2019-development "
                                 "(OUT/TAU-urban-acoustic-scenes-2022-mobile-development with --preset tau2022) (default: current folder)")
    s.add_argument("--seed", type=number_type(integer=True, minimum=0), help="random seed; same seed, same files (default: 0)")
    s.add_argument("--tau-format", action="store_true", help="full-size TAU audio: 48 kHz, 24-bit, stereo, 10 s clips (benchmarks, 48 kHz path)")
    s.add_argument("--sample-rate", type=number_type(integer=True, minimum=1000), help="sample rate in Hz (default: 16000; 48000 with --tau-format; 44100 with --preset tau2022)")
    s.add_argument("--seconds", type=number_type(above=0, maximum=600), help="clip length in seconds (default: 4; 10 with --tau-format)")
    s.add_argument("--locations", type=_COUNT, help="recording locations per (scene, city) (default: 3)")
    s.add_argument("--segments", type=_COUNT, help="segments per location (default: 8)")
    s.add_argument("--city-shift", type=number_type(minimum=0), help="strength of the per-city recording-condition shift; 0 = cities identical (default: 1)")
    s.add_argument("--location-spread", type=number_type(minimum=0), help="variation between locations within a city (default: 1)")
    s.add_argument("--device-shift", type=number_type(minimum=0), help="tau2022: strength of the per-device recording-condition shift; 0 = devices identical (default: 1)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_synth)

    i = dsub.add_parser("info", help="layout, protocols and counts per fold × class × domain",
                        description="Load a dataset (validating every file's header), say which layout it has, and print "
                                    "its audio format, protocols and clip counts per fold, class and domain.")
    i.add_argument("path", nargs="?", default=DEFAULT_DATA,
                   help=f"dataset folder or manifest, or '{DEFAULT_DATA}' for the embedded default (default)")
    _dataset_options(i)
    i.add_argument("--no-progress", action="store_true", help="no progress bar")
    i.set_defaults(func=cmd_info)

    f = dsub.add_parser("features", help="precompute and cache log-mel features",
                        description="Extract log-mel features (paper settings: 40 ms window, 20 ms hop, both channels) into the on-disk cache.")
    f.add_argument("path", nargs="?", default=DEFAULT_DATA, help=f"dataset folder or manifest, or '{DEFAULT_DATA}' (default)")
    _dataset_options(f)
    f.add_argument("--mels", type=mels_list, default=(40,), help="comma-separated mel band counts (default: 40)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_features)
