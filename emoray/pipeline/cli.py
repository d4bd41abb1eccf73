"""``emoray pipeline``: preprocess -> train -> label as one job, from one config file."""

from __future__ import annotations

import argparse

from emoray.command import add_run_options, run_command
from emoray.pipeline.config import PipelineConfig, load_pipeline_config
from emoray.pipeline.run import format_summary, run_pipeline


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="emoray pipeline", description=__doc__)
    p.add_argument("--config", required=True, help="YAML config (jobs/configs/pipeline.yaml)")
    add_run_options(p)
    p.add_argument("overrides", nargs="*", help="config overrides, section.key=value "
                                                "(e.g. preprocess.input=s3://b/in "
                                                "train.audio.epochs=5)")
    args = p.parse_args(argv)

    def work(cfg: PipelineConfig) -> int:
        print(f"emoray pipeline: done.\n{format_summary(run_pipeline(cfg))}")
        return 0

    return run_command("emoray pipeline", lambda: load_pipeline_config(args.config,
                                                                       args.overrides),
                       work, args)
