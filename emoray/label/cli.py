"""``emoray label``: label the media under a folder or s3:// prefix with a model artifact."""

from __future__ import annotations

import argparse

from emoray.command import add_run_options, run_command
from emoray.config import build, load_yaml
from emoray.label.config import DEFAULT_MODEL, LabelConfig
from emoray.label.job import run_label


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="emoray label", description=__doc__)
    p.add_argument("--config", help="YAML config (jobs/configs/label.yaml)")
    p.add_argument("--model", help="model artifact, local path or s3:// (default: "
                                   f"{DEFAULT_MODEL}, built by `make speech-model`)")
    p.add_argument("--input", help="folder or s3:// prefix of media (searched recursively)")
    p.add_argument("--output", help="folder or s3:// prefix for labels/ and errors/ parts")
    add_run_options(p)
    p.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = p.parse_args(argv)

    def configure() -> LabelConfig:
        data = load_yaml(args.config, args.overrides)
        data.update({k: v for k in ("model", "input", "output")
                     if (v := getattr(args, k)) is not None})
        return build(LabelConfig, data)

    def work(cfg: LabelConfig) -> int:
        run_label(cfg)
        return 0

    return run_command("emoray label", configure, work, args)
