"""``emoray <command> ...``: each command lives in its own module with ``main(argv) -> int``."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "synth": ("emoray.synth.cli", "write a synthetic RAVDESS-shaped corpus"),
    "preprocess": ("emoray.preprocess.cli", "media files -> Parquet shards (Ray Data)"),
    "train": ("emoray.train.cli", "train the audio, video or fusion model (Ray Train)"),
    "label": ("emoray.label.cli", "label media with a model artifact (Ray Data batch inference)"),
    "pipeline": ("emoray.pipeline.cli", "preprocess -> train -> label in one job"),
    "evaluate": ("emoray.evaluate.cli", "score a model on RAVDESS-named files (labels from names)"),
    "report": ("emoray.report", "rebuild the label report of a labeling output"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = "\n".join(f"  {c:<{width}}  {h}" for c, (_, h) in COMMANDS.items())
        print(f"usage: emoray <command> [args]\n\ncommands:\n{lines}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
