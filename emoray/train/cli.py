"""``emoray train``: train the audio, video and/or fusion models of a config (Ray Train)."""

from __future__ import annotations

import argparse

from emoray import storage
from emoray.command import add_run_options, run_command


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="emoray train", description=__doc__)
    p.add_argument("--config", required=True, help="YAML config (jobs/configs/train_*.yaml)")
    add_run_options(p)
    p.add_argument("overrides", nargs="*", help="config overrides, key.sub=value "
                                                "(e.g. audio.epochs=5 protocol.kind=actors)")
    args = p.parse_args(argv)
    from emoray.train import load_train_config, train

    def work(cfg) -> int:
        metrics = train(cfg)
        for kind, s in metrics["stages"].items():
            t = s["test"]
            print(f"{kind}: " + (f"test accuracy {100 * t['accuracy']['mean']:.2f}%, UAR "
                                 f"{100 * t['uar']['mean']:.2f}%" if t else "not tested"))
        print(f"report: {storage.join(cfg.storage, cfg.name, 'report', 'summary.md')}")
        print(f"models: {storage.join(cfg.storage, cfg.name, 'models')}/<split>/<stage>.pt")
        return 0

    return run_command("emoray train", lambda: load_train_config(args.config, args.overrides),
                       work, args)
