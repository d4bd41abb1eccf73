"""``make demo``: the whole pipeline on a small synthetic corpus and a local Ray:
synthesize -> preprocess -> train audio, video and fusion (briefly) -> report -> label an
archive (a held-out synthetic actor's audio-only, video-only and full-AV files)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from emoray.config import build, load_yaml
from emoray.label.config import LabelConfig
from emoray.label.job import run_label
from emoray.preprocess.job import PreprocessConfig, run_preprocess
from emoray.raycluster import init_ray
from emoray.synth.corpus import synthesize_corpus
from emoray.train import load_train_config, train

DEMO = Path("demo")
# Short epochs so the demo ends in minutes on 2 cores; the paper's settings are the config's.
TRAIN_OVERRIDES = [f"data={DEMO / 'shards'}", f"storage={DEMO / 'runs'}", "name=demo",
                   "audio.preset=default", "video.preset=default", "fusion.preset=default",
                   "audio.epochs=40", "video.epochs=8", "fusion.epochs=15"]


def stills_dir() -> Path | None:
    data = Path(os.environ.get("EMORAY_DATA") or Path.cwd().parent / "shared" / "data")
    return data / "ravdess-stills" if (data / "ravdess-stills").is_dir() else None


def main() -> int:
    corpus = DEMO / "corpus"
    print(f"emoray demo: synthesizing a 4-actor corpus in {corpus} ...", flush=True)
    synthesize_corpus(corpus, actors=(1, 2, 3, 4), seed=0, modalities=("audio", "video"),
                      width=640, height=360, stills_dir=stills_dir())
    init_ray()
    manifest = run_preprocess(PreprocessConfig(input=str(corpus), output=str(DEMO / "shards")))
    if not manifest["n_clips"]:
        return 1
    train(load_train_config("jobs/configs/train_all.yaml", TRAIN_OVERRIDES))
    run = DEMO / "runs" / "demo"
    archive = DEMO / "archive"
    synthesize_corpus(archive, actors=(5,), seed=1, modalities=("audio", "video", "av"),
                      emotions=(1, 4, 5, 8), width=640, height=360, stills_dir=stills_dir())
    run_label(build(LabelConfig, load_yaml("jobs/configs/label.yaml", [
        f"model={run / 'models' / 'random' / 'fusion.pt'}", f"input={archive}",
        f"output={DEMO / 'labels'}"])))
    print(f"\nemoray demo: done.\n  shards:  {DEMO / 'shards'}\n"
          f"  report:  {run / 'report' / 'summary.md'} (plots beside it)\n"
          f"  models:  {run / 'models'}\n  labels:  {DEMO / 'labels' / 'labels'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
