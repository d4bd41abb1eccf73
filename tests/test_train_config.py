from pathlib import Path

import pytest

from emoray.config import ConfigError
from emoray.train.config import load_train_config, train_config

CONFIGS = sorted((Path(__file__).parents[1] / "jobs" / "configs").glob("train_*.yaml"))
BASE = {"name": "t", "data": "d", "storage": "s"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_job_configs_are_valid(path):
    cfg = load_train_config(str(path))
    assert cfg.stages


def test_presets_fill_what_the_config_leaves_out():
    cfg = train_config({**BASE, "video": {"preset": "default", "epochs": 7}})
    assert (cfg.audio.epochs, cfg.video.epochs, cfg.fusion.epochs) == (25, 7, 12)
    assert (cfg.audio.batch_size, cfg.audio.lr, cfg.audio.class_weights) == (32, 0.001, False)
    assert cfg.video.class_weights and cfg.video.schedule == "onecycle" and cfg.video.lr == 0.003
    assert cfg.audio.schedule == "constant"
    assert cfg.workers.use_gpu == "auto"


def test_overrides_and_errors_name_the_field():
    path = CONFIGS[0]
    cfg = load_train_config(str(path), ["audio.epochs=3", "workers.use_gpu=false"])
    assert cfg.audio.epochs == 3 and cfg.workers.use_gpu is False
    for data, message in (
            ({**BASE, "protocol": {"kind": "actors"}}, "exactly one of test_actors"),
            ({**BASE, "stages": ["fusion"]}, "audio_model: fusion without the audio stage"),
            ({**BASE, "audio": {"preset": "fancy"}}, "audio.preset"),
            ({**BASE, "audio": {"model": {"kernel": "big"}}}, "audio.model.kernel"),
            ({**BASE, "workers": {"use_gpu": "maybe"}}, "workers.use_gpu"),
            ({**BASE, "stages": ["audio"], "protocol": {"kind": "actors", "folds": 4},
              "video_model": "v.pt", "audio_model": None}, None)):
        if message is None:
            train_config(data)
            continue
        with pytest.raises(ConfigError, match=message):
            train_config(data)


def test_cli_reports_config_errors_without_starting_ray(capsys):
    from emoray.train.cli import main

    assert main(["--config", str(CONFIGS[0]), "protocol.kind=speakers"]) == 2
    assert "protocol.kind" in capsys.readouterr().err


def test_training_workers_leave_cpus_for_ray_data():
    from emoray.train.stage import auto_cpus_per_worker

    assert auto_cpus_per_worker(2, 2, 2, use_gpu=False) == 0.5  # 2 CPUs: one left for Ray Data
    assert auto_cpus_per_worker(16, 16, 2, use_gpu=False) == 6.0
    assert auto_cpus_per_worker(16, 16, 1, use_gpu=True) == 4.0
    assert auto_cpus_per_worker(64, 32, 2, use_gpu=False) == 24.0
    assert auto_cpus_per_worker(0, 0, 4, use_gpu=True) == 4.0  # autoscaling, no nodes yet
