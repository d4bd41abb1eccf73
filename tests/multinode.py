"""A several-node Ray cluster on 127.0.0.1 (``ray.cluster_utils.Cluster``) running emoray's
preprocessing and labeling, then reporting where each task and actor ran (Ray's state API).

Run as a script by ``test_multinode.py``, in its own process so that it never meets the test
session's local Ray: ``python tests/multinode.py '<json args>'`` prints one JSON line. The
nodes stand for ``cluster.yaml``'s: a head without CPUs, CPU workers advertising
``emoray_cpu``, and a "GPU" worker advertising ``emoray_gpu``.
"""

from __future__ import annotations

import json
import sys
import time

import ray
from ray.cluster_utils import Cluster
from ray.util.state import list_actors, list_tasks

from emoray.label.config import LabelConfig
from emoray.label.job import run_label
from emoray.preprocess.job import PreprocessConfig, run_preprocess

LOCAL = {"node_ip_address": "127.0.0.1", "object_store_memory": 200 << 20}


def run(args: dict) -> dict:
    cluster = Cluster(initialize_head=True, head_node_args={
        **LOCAL, "num_cpus": 0, "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": args["dashboard_port"],
        "dashboard_agent_listen_port": args["agent_port"]})
    try:
        nodes = {"head": [cluster.head_node.node_id]}
        for kind, resource in (("cpu", "emoray_cpu"), ("cpu", "emoray_cpu"), ("gpu", "emoray_gpu")):
            node = cluster.add_node(**LOCAL, num_cpus=1, resources={resource: 100})
            nodes.setdefault(kind, []).append(node.node_id)
        ray.init(address=cluster.address)
        ray.data.DataContext.get_current().enable_progress_bars = False
        manifest = run_preprocess(PreprocessConfig(**args["preprocess"]))
        labels = run_label(LabelConfig(**args["label"]))
        return {"nodes": nodes, "manifest": manifest, "labels": labels,
                "tasks": settled_tasks(cluster.address, ("_shard_task", "prepare_part",
                                                           "commit_predicted")),
                "actors": [{"class_name": a.class_name, "node_id": a.node_id}
                           for a in list_actors(cluster.address, limit=10_000,
                                                raise_on_missing_output=False)]}
    finally:
        ray.shutdown()
        cluster.shutdown()


def settled_tasks(address: str, names: tuple[str, ...], timeout: float = 30) -> list[dict]:
    """The tasks whose names contain one of ``names``, once their reported states are final
    (workers report task events about once a second, so the last ones lag)."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = [{"name": t.name, "node_id": t.node_id, "state": t.state}
                 for t in list_tasks(address, limit=10_000, raise_on_missing_output=False)
                 if any(n in t.name for n in names)]
        if all(t["state"] in ("FINISHED", "FAILED") for t in tasks) or time.monotonic() > deadline:
            return tasks
        time.sleep(1)


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
