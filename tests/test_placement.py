"""Pinning work to nodes by a custom resource: the options, the config checks, and the warning
when no node advertises the resource (the work would wait for one)."""

import pytest

from emoray.config import ConfigError, build
from emoray.label.config import LabelConfig
from emoray.preprocess.job import PreprocessConfig
from emoray.raycluster import pinned


def test_pinned_asks_for_a_tiny_share_of_the_resource(ray_local, capsys):
    assert pinned(None) == {}
    assert pinned("emoray_nowhere") == {"resources": {"emoray_nowhere": 0.001}}
    assert "no node advertises 'emoray_nowhere' now" in capsys.readouterr().err
    assert pinned("CPU") == {"resources": {"CPU": 0.001}}  # present: no warning
    assert capsys.readouterr().err == ""


def config(cls, **fields):
    base = {"input": "in", "output": "out"} | ({"model": "m.pt"} if cls is LabelConfig else {})
    return build(cls, base | fields)


@pytest.mark.parametrize("cls, field", [(PreprocessConfig, "node_resource"),
                                        (LabelConfig, "node_resource"),
                                        (LabelConfig, "model_resource")])
@pytest.mark.parametrize("value", ["GPU", "CPU", ""])
def test_configs_refuse_resources_ray_defines(cls, field, value):
    with pytest.raises(ConfigError, match=f"{field}: '{value}' must name a custom resource"):
        config(cls, **{field: value})
    assert getattr(config(cls, **{field: "emoray_cpu"}), field) == "emoray_cpu"
