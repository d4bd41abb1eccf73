"""``make demo`` (``emoray.demo.main``) end to end on the session's local Ray, made small: fewer
trials, small frames, tiny networks and one epoch a stage."""

import json

import pytest

from conftest import REPO
from emoray import demo

TINY = ["train.workers.num_workers=1", "train.audio.epochs=1", "train.video.epochs=1",
        "train.fusion.epochs=1", "train.audio.model={channels: [8, 8], hidden: [16]}",
        "train.video.model={channels: [4, 8]}"]
SMALL = {"emotions": (1, 3, 5, 8), "intensities": (1,), "repetitions": (1,), "width": 160,
         "height": 90, "stills_dir": None}


@pytest.mark.slow
def test_demo_runs_the_pipeline_and_scores_the_held_out_archive(ray_local, tmp_path,
                                                                monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the demo writes demo/ in the working directory
    (tmp_path / "jobs").symlink_to(REPO / "jobs")
    assert demo.main(TINY, **SMALL) == 0
    printed = capsys.readouterr().out
    scores = json.loads((tmp_path / "demo" / "labels" / "evaluation.json").read_text())
    assert scores["n"] == 24 and not scores["errors"]  # actor 5: 4 emotions x 2 statements x 3
    assert f"accuracy {100 * scores['accuracy']:.2f}%" in printed
    assert "emoray demo: done." in printed
    model = tmp_path / "demo" / "runs" / "demo" / "models" / "random" / "fusion.pt"
    assert model.is_file() and str(model.relative_to(tmp_path)) in printed
