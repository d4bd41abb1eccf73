"""Learning-rate schedules (pure functions of progress)."""

import pytest

from emoray.train.schedule import lr_at


def test_constant_is_the_paper_rate():
    assert {lr_at("constant", 1e-3, p) for p in (0, 0.5, 1)} == {1e-3}


def test_onecycle_warms_up_peaks_and_anneals():
    rates = [lr_at("onecycle", 3e-3, i / 100) for i in range(101)]
    peak = rates.index(max(rates))
    assert peak == 30 and rates[30] == pytest.approx(3e-3)
    assert rates[0] == pytest.approx(3e-3 / 25) and rates[-1] == pytest.approx(3e-7)
    assert all(a < b for a, b in zip(rates[:peak], rates[1:peak + 1]))
    assert all(a > b for a, b in zip(rates[peak:-1], rates[peak + 1:]))
    assert lr_at("onecycle", 3e-3, 1.7) == rates[-1]  # a run extended past its plan stays low


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        lr_at("cosine", 1e-3, 0.5)


def test_config_rejects_unknown_schedule():
    from emoray.config import ConfigError
    from emoray.train import train_config

    with pytest.raises(ConfigError, match="schedule"):
        train_config({"name": "x", "data": "d", "storage": "s", "audio": {"schedule": "cosine"}})
