"""``make demo``: the whole system on a small synthetic corpus and a local Ray. Synthesize four
actors to train on and a held-out fifth as the archive, run the pipeline job
(``jobs/configs/pipeline.yaml``: preprocess -> train audio, video and fusion briefly -> label
the archive), then evaluate the fusion model on the archive, whose names give the truth."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from emoray import console, storage
from emoray.evaluate import evaluate
from emoray.evaluate.run import RESULT
from emoray.evaluate.score import format_report
from emoray.pipeline import load_pipeline_config, run_pipeline
from emoray.pipeline.run import format_summary
from emoray.raycluster import init_ray
from emoray.synth.corpus import synthesize_corpus

DEMO = Path("demo")
# Short epochs so the demo ends in minutes on 2 cores; the presets' own epochs are longer.
# The video branch: the default preset one block narrower, over frame-to-frame differences
# (``motion``: how a face moves, so four training faces carry over to the archive's fifth), in
# batches of 8 (144 training clips: the steps a 3D CNN needs in 10 epochs).
OVERRIDES = [f"preprocess.input={DEMO / 'corpus'}", f"preprocess.output={DEMO / 'shards'}",
             "train.name=demo", f"train.storage={DEMO / 'runs'}", "train.audio.epochs=30",
             "train.video.epochs=10", "train.video.batch_size=8",
             "train.video.model={channels: [16, 32, 64], motion: true}", "train.fusion.epochs=10",
             f"label.input={DEMO / 'archive'}", f"label.output={DEMO / 'labels'}"]
FRAME = {"width": 320, "height": 180}  # the synthetic videos' size


def stills_dir() -> Path | None:
    data = Path(os.environ.get("EMORAY_DATA") or Path.cwd().parent / "shared" / "data")
    return data / "ravdess-stills" if (data / "ravdess-stills").is_dir() else None


def main(argv: Sequence[str] | None = None, **corpus) -> int:
    """The demo; ``argv``: ``--verbose`` and pipeline ``section.key=value`` overrides (after
    the demo's own); ``corpus``: ``synthesize_corpus`` fields for both corpora, which make it
    smaller, as its test runs it."""
    p = argparse.ArgumentParser(prog="python -m emoray.demo", description=__doc__)
    p.add_argument("--verbose", action="store_true",
                   help=f"show Ray's own logs too (or set {console.VERBOSE_ENV}=1)")
    p.add_argument("overrides", nargs="*", help="pipeline config overrides, section.key=value")
    args = p.parse_args(argv)
    console.set_verbose(args.verbose)
    cfg = load_pipeline_config("jobs/configs/pipeline.yaml", OVERRIDES + args.overrides)
    print(f"emoray demo: synthesizing 4 actors in {cfg.preprocess.input} and a held-out "
          f"archive in {cfg.label.input} ...", flush=True)
    train = {"modalities": ("audio", "video"), **FRAME, "stills_dir": stills_dir(), **corpus}
    with console.bar("synthesize", 5, "actor") as bar:
        for actor in (1, 2, 3, 4):
            synthesize_corpus(cfg.preprocess.input, actors=(actor,), seed=0, **train)
            bar.update()
        synthesize_corpus(cfg.label.input, actors=(5,), seed=1,
                          **{"modalities": ("audio", "video", "av"), "emotions": (1, 4, 5, 8),
                             **FRAME, "stills_dir": stills_dir(), **corpus})
        bar.update()
    init_ray()
    result = run_pipeline(cfg)
    # The archive is labelled already: evaluating into the same output only scores the labels.
    scores = evaluate(dataclasses.replace(cfg.label, model=result["model"]))
    print(f"\n{format_report(scores)}\n\nemoray demo: done.\n{format_summary(result)}\n"
          f"  scores:  {storage.join(cfg.label.output, RESULT)} (the fusion model on the "
          "held-out archive)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
