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
    monkeypatch.chdir(REPO)  # the demo reads jobs/configs/pipeline.yaml
    demo_dir = tmp_path / "demo"  # absolute: the session's Ray workers have their own cwd
    places = [f"preprocess.input={demo_dir / 'corpus'}", f"preprocess.output={demo_dir / 'shards'}",
              f"train.storage={demo_dir / 'runs'}", f"label.input={demo_dir / 'archive'}",
              f"label.output={demo_dir / 'labels'}"]
    assert demo.main(TINY + places, **SMALL) == 0
    printed = capsys.readouterr().out
    scores = json.loads((demo_dir / "labels" / "evaluation.json").read_text())
    assert scores["n"] == 24 and not scores["errors"]  # actor 5: 4 emotions x 2 statements x 3
    assert f"accuracy {100 * scores['accuracy']:.2f}%" in printed
    assert "emoray demo: done." in printed
    model = demo_dir / "runs" / "demo" / "models" / "random" / "fusion.pt"
    assert model.is_file() and f"model:   {model}" in printed
