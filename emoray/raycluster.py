"""Connecting to Ray (the cluster in ``RAY_ADDRESS``, set by ``ray job submit``, or a local
one) and placing work on the nodes meant for it."""

from __future__ import annotations

import os
import sys

import ray

from emoray import console
from emoray.config import ConfigError


def init_ray(num_cpus: int | None = None) -> None:
    """Join the cluster the job was submitted to, else start a local Ray (``num_cpus`` there);
    quiet unless verbose (``emoray.console``)."""
    if ray.is_initialized():
        return
    options = console.ray_init_options()
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**options)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **options)
    console.configure()


BUILTIN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")


def check_resource(field: str, resource: str | None) -> None:
    """A config field naming a custom resource: not empty, not one Ray defines itself."""
    if resource is not None and (not resource or resource in BUILTIN_RESOURCES):
        raise ConfigError(f"{field}: {resource!r} must name a custom resource that nodes "
                          "advertise (cluster.yaml: emoray_cpu), not one of "
                          f"{', '.join(BUILTIN_RESOURCES)}")


def pinned(resource: str | None) -> dict:
    """Ray options that keep a task or actor on the nodes advertising the custom ``resource``
    (cluster.yaml: ``emoray_cpu`` on CPU workers). It asks for a tiny share, so the resource
    never limits how many run there; CPUs and GPUs do. Says so when no node has it now (the
    work waits for one: an autoscaler starts it, a fixed cluster never does)."""
    if not resource:
        return {}
    if resource not in ray.cluster_resources():
        print(f"emoray: no node advertises {resource!r} now; the work pinned to it waits until "
              "one joins the cluster", file=sys.stderr, flush=True)
    return {"resources": {resource: 0.001}}
