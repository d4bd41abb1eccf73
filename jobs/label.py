"""Ray job: ``ray job submit --working-dir . -- python jobs/label.py --config
jobs/configs/label.yaml``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the uploaded working dir

from emoray.label.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
