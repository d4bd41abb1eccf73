"""``emoray preprocess``: RAVDESS-named media (folder or s3:// prefix) -> Parquet shards."""

from __future__ import annotations

import argparse
import sys

from emoray.config import ConfigError, build, load_yaml
from emoray.label.redact import redact
from emoray.preprocess.job import PreprocessConfig, run_preprocess
from emoray.raycluster import init_ray


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="emoray preprocess", description=__doc__)
    p.add_argument("--config", help="YAML config (jobs/configs/preprocess.yaml)")
    p.add_argument("--input", help="folder or s3:// prefix of media files")
    p.add_argument("--output", help="folder or s3:// prefix for shards and manifest")
    p.add_argument("--features", help="feature preset: default or paper")
    p.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (ignored on a cluster)")
    p.add_argument("overrides", nargs="*", help="config overrides, key.sub=value")
    args = p.parse_args(argv)
    try:
        data = load_yaml(args.config, args.overrides)
        data.update({k: v for k in ("input", "output", "features")
                     if (v := getattr(args, k)) is not None})
        cfg = build(PreprocessConfig, data)
    except ConfigError as e:
        print(f"emoray preprocess: config error: {e}", file=sys.stderr)
        return 2
    init_ray(args.num_cpus)
    try:
        manifest = run_preprocess(cfg)
    except Exception as e:  # noqa: BLE001 - report without leaking credentials
        print(f"emoray preprocess: failed: {redact(f'{type(e).__name__}: {e}')}", file=sys.stderr)
        return 1
    return 0 if manifest["n_clips"] else 1
