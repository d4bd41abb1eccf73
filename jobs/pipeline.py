"""Ray job: ``ray job submit --working-dir . -- python jobs/pipeline.py
--config jobs/configs/pipeline.yaml [section.key=value ...]`` (same as ``emoray pipeline``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the uploaded working dir

from emoray.pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
