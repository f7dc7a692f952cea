"""``harness export``: a trained run's model as ONNX or TorchScript, with its preprocessing contract."""

from __future__ import annotations

import argparse

from harness.paths import results_dir


def cmd_export(args: argparse.Namespace) -> int:
    from harness.inference.export import export
    from harness.inference.trained import open_run

    run = open_run(results_dir(args.results), args.run)
    done = export(run, args.format, args.out)
    check = ("not checked (onnxruntime is not installed)" if done.max_abs_diff is None
             else f"checked: max |logit difference| vs PyTorch {done.max_abs_diff:.2e}")
    print(f"wrote {done.model} and {done.contract.name} ({check})")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from harness.inference.export import FORMATS

    p = sub.add_parser(
        "export", help="write a trained run's model as ONNX or TorchScript with its preprocessing contract",
        description="Write the run's model (the architecture's reference definition with the run's final weights; input: "
                    "normalised log-mel (batch, channels, n_mels, n_frames), output: logits) as ONNX or TorchScript, and "
                    "<run-id>.preprocessing.json beside it with the feature settings, normalisation statistics and class "
                    "names. The written file is run once and compared with PyTorch. ONNX needs `pip install 'harness[onnx]'`.")
    p.add_argument("run", metavar="RUN", help="run id (or a unique prefix of one) under <results>/runs")
    p.add_argument("--format", required=True, choices=sorted(FORMATS), help="onnx (opset 18, dynamic batch) or torchscript (traced)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: <run folder>/export)")
    p.add_argument("--results", help="results folder (default: $HARNESS_RESULTS or ./results)")
    p.set_defaults(func=cmd_export)
