"""Ray job: ``ray job submit --working-dir . -- python jobs/train.py
--config jobs/configs/train_all.yaml [key.sub=value ...]`` (same as ``emoray train``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the uploaded working dir

from emoray.train.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
