"""``make demo``: the whole pipeline, as far as it exists, on a small synthetic corpus and a
local Ray: synthesize -> preprocess."""

from __future__ import annotations

import sys
from pathlib import Path

from emoray.preprocess.job import PreprocessConfig, run_preprocess
from emoray.raycluster import init_ray
from emoray.synth.corpus import synthesize_corpus

DEMO = Path("demo")


def main() -> int:
    stills = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess-stills"
    corpus = DEMO / "corpus"
    print(f"emoray demo: synthesizing a 4-actor corpus in {corpus} ...", flush=True)
    synthesize_corpus(corpus, actors=(1, 2, 3, 4), seed=0, modalities=("audio", "video"),
                      width=640, height=360, stills_dir=stills if stills.is_dir() else None)
    init_ray()
    manifest = run_preprocess(PreprocessConfig(input=str(corpus), output=str(DEMO / "shards")))
    print(f"emoray demo: shards, errors table and manifest in {DEMO / 'shards'}")
    return 0 if manifest["n_clips"] else 1


if __name__ == "__main__":
    sys.exit(main())
