"""``emoray preprocess``: RAVDESS-named media (folder or s3:// prefix) -> Parquet shards."""

from __future__ import annotations

import argparse

from emoray.command import add_run_options, run_command
from emoray.config import build, load_yaml
from emoray.preprocess.job import PreprocessConfig, run_preprocess


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="emoray preprocess", description=__doc__)
    p.add_argument("--config", help="YAML config (jobs/configs/preprocess.yaml)")
    p.add_argument("--input", help="folder or s3:// prefix of media files")
    p.add_argument("--output", help="folder or s3:// prefix for shards and manifest")
    p.add_argument("--features", help="feature preset: default or paper")
    add_run_options(p)
    p.add_argument("overrides", nargs="*", help="config overrides, key.sub=value")
    args = p.parse_args(argv)

    def configure() -> PreprocessConfig:
        data = load_yaml(args.config, args.overrides)
        data.update({k: v for k in ("input", "output", "features")
                     if (v := getattr(args, k)) is not None})
        return build(PreprocessConfig, data)

    return run_command("emoray preprocess", configure,
                       lambda cfg: 0 if run_preprocess(cfg)["n_clips"] else 1, args)
