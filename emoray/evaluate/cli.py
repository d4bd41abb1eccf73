"""``emoray evaluate``: accuracy, UAR, macro-F1 and the confusion matrix of a model artifact on
a folder (or s3:// prefix) of RAVDESS-named files; the true emotions come from the names."""

from __future__ import annotations

import argparse
import tempfile

from emoray.command import add_run_options, run_command
from emoray.config import build, load_yaml
from emoray.evaluate.run import evaluate
from emoray.evaluate.score import format_report
from emoray.label.config import DEFAULT_MODEL, LabelConfig


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="emoray evaluate", description=__doc__)
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"model artifact, local path or s3:// (default: {DEFAULT_MODEL}, the "
                        "audio model `make speech-model` trains on RAVDESS actors 1-18)")
    p.add_argument("--data", required=True, help="folder or s3:// prefix of RAVDESS-named files")
    p.add_argument("--output", help="folder or s3:// prefix for the labels and evaluation.json "
                                    "(default: a temporary folder)")
    add_run_options(p)
    p.add_argument("overrides", nargs="*", help="labeling settings, key=value "
                                                "(jobs/configs/label.yaml fields)")
    args = p.parse_args(argv)

    def work(cfg: LabelConfig) -> int:
        result = evaluate(cfg)
        print(format_report(result))
        return 0 if result["n"] else 1

    with tempfile.TemporaryDirectory(prefix="emoray-evaluate-") as tmp:
        return run_command("emoray evaluate", lambda: build(LabelConfig, {
            **load_yaml(None, args.overrides), "model": args.model, "input": args.data,
            "output": args.output or tmp}), work, args)
