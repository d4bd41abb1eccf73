"""``emoray synth``: write a synthetic RAVDESS-shaped corpus."""

from __future__ import annotations

import argparse
import time

from emoray.synth.corpus import synthesize_corpus


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="emoray synth", description=__doc__)
    p.add_argument("--out", required=True, help="output folder (Actor_XX/ inside)")
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="actor numbers 1..24")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modalities", nargs="+", default=["audio", "video", "av"],
                   choices=["audio", "video", "av"])
    p.add_argument("--emotions", type=int, nargs="+", help="emotion codes 1..8 (default all)")
    p.add_argument("--size", default="1280x720", help="video WIDTHxHEIGHT")
    p.add_argument("--stills", help="folder of real face stills Actor_XX.png (else a drawn face)")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    start = time.perf_counter()
    paths = synthesize_corpus(args.out, actors=args.actors, seed=args.seed,
                              modalities=args.modalities, emotions=args.emotions,
                              width=width, height=height, stills_dir=args.stills)
    print(f"emoray synth: {len(paths)} files in {args.out} ({time.perf_counter() - start:.1f} s)")
    return 0
