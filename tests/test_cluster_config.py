"""cluster.yaml passes Ray's own cluster-config validation and keeps emoray's layout."""

import copy

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from conftest import REPO


@pytest.fixture(scope="module")
def cluster():
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_ray_validates_cluster_yaml(cluster):
    validate_config(prepare_config(copy.deepcopy(cluster)))


def test_ray_validation_catches_a_broken_copy(cluster):
    bad = copy.deepcopy(cluster)
    bad["available_node_types"]["gpu_worker"]["min_workers"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))


def test_node_roles(cluster):
    types = cluster["available_node_types"]
    assert types["head"]["resources"] == {"CPU": 0}  # drivers only
    assert "emoray_cpu" in types["cpu_worker"]["resources"]  # where preprocessing runs
    assert "emoray_cpu" not in types["gpu_worker"]["resources"]
    assert types["gpu_worker"]["node_config"]["InstanceType"].startswith(("g5", "g6", "p4", "p5"))
    for name in ("cpu_worker", "gpu_worker"):
        assert types[name]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
        assert types[name]["min_workers"] == 0 and types[name]["max_workers"] > 0
    for t in types.values():
        assert "IamInstanceProfile" in t["node_config"]  # S3 access without keys on nodes
    setup = " ".join(cluster["setup_commands"])
    assert "pip install" in setup and "emoray" in setup
    assert any("/dev/shm" in c for c in cluster["initialization_commands"])


def test_runtime_env_pins_the_projects_dependencies():
    """jobs/runtime_env.yaml (``pip`` in the runtime env) installs exactly pyproject.toml's
    dependencies except Ray, which the cluster provides; Ray accepts it as a runtime env."""
    import tomllib

    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load((REPO / "jobs" / "runtime_env.yaml").read_text())
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert env["pip"] == [d for d in deps if not d.startswith("ray")]
    assert RuntimeEnv(**env, working_dir=".")["pip"]["packages"] == env["pip"]
