"""``emoray label``: label the media under a folder or s3:// prefix with a model artifact."""

from __future__ import annotations

import argparse
import sys

from emoray.config import ConfigError, build, load_yaml
from emoray.label.config import LabelConfig
from emoray.label.job import run_label
from emoray.label.redact import redact
from emoray.raycluster import init_ray


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="emoray label", description=__doc__)
    p.add_argument("--config", help="YAML config (jobs/configs/label.yaml)")
    p.add_argument("--model", help="model artifact, local path or s3://")
    p.add_argument("--input", help="folder or s3:// prefix of media (searched recursively)")
    p.add_argument("--output", help="folder or s3:// prefix for labels/ and errors/ parts")
    p.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (ignored on a cluster)")
    p.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = p.parse_args(argv)
    try:
        data = load_yaml(args.config, args.overrides)
        data.update({k: v for k in ("model", "input", "output")
                     if (v := getattr(args, k)) is not None})
        cfg = build(LabelConfig, data)
    except ConfigError as e:
        print(f"emoray label: config error: {e}", file=sys.stderr)
        return 2
    init_ray(args.num_cpus)
    try:
        run_label(cfg)
    except Exception as e:  # noqa: BLE001 - report without leaking credentials
        print(f"emoray label: failed: {redact(f'{type(e).__name__}: {e}')}", file=sys.stderr)
        return 1
    return 0
