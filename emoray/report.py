"""``emoray report --labels OUTPUT``: rebuild the label report of a labeling output (its
``report/`` folder) from the output's Parquet parts alone."""

from __future__ import annotations

import argparse

from emoray import storage
from emoray.command import add_run_options, run_command
from emoray.config import ConfigError, check_uri
from emoray.label.parts import LABELS_DIR
from emoray.label.report import write_report


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="emoray report", description=__doc__)
    p.add_argument("--labels", required=True, metavar="OUTPUT",
                   help="output folder or s3:// prefix of `emoray label`")
    add_run_options(p)
    args = p.parse_args(argv)

    def configure() -> str:
        check_uri("--labels", args.labels)
        output = storage.absolute(args.labels)
        try:
            parts = storage.list_files(storage.join(output, LABELS_DIR))
        except FileNotFoundError:
            parts = []
        if not parts:
            raise ConfigError(f"--labels: no {LABELS_DIR}/ parts under {args.labels}; name the "
                              "output of `emoray label`")
        return output

    def work(output: str) -> int:
        print(f"emoray report: {write_report(output)}")
        return 0

    return run_command("emoray report", configure, work, args, ray=False)
