"""Connecting to Ray (the cluster in ``RAY_ADDRESS``, set by ``ray job submit``, or a local
one) and placing work on the nodes meant for it."""

from __future__ import annotations

import os

import ray


def init_ray(num_cpus: int | None = None) -> None:
    """Join the cluster the job was submitted to, else start a local Ray (``num_cpus`` there)."""
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
    ray.data.DataContext.get_current().enable_progress_bars = True


def pinned(resource: str | None) -> dict:
    """Ray options that keep a task or actor on the nodes advertising the custom ``resource``
    (cluster.yaml: ``emoray_cpu`` on CPU workers). It asks for a tiny share, so the resource
    never limits how many run there; CPUs and GPUs do."""
    return {"resources": {resource: 0.001}} if resource else {}
