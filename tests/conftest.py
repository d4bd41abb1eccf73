"""Shared fixtures: real data location, one local Ray per session, a SeaweedFS S3 server,
and a small synthetic corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every process it started (a driver, its local Ray's GCS and
    raylet, their workers), all at once: a kill that leaves Ray workers running lets them
    finish the work the test meant to cut short."""
    import psutil

    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


def real_data_dir() -> Path:
    """``$EMORAY_DATA``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("EMORAY_DATA") or REPO.parent / "shared" / "data")


def real_data(rel: str) -> Path:
    """``real_data_dir() / rel``, a folder (or file) of real RAVDESS data that a test reads.
    Missing or empty, the calling test is skipped; in CI (``CI=true``), where the data must be
    present, it fails instead."""
    path = real_data_dir() / rel
    if not (any(path.iterdir()) if path.is_dir() else path.is_file() and path.stat().st_size):
        message = f"real RAVDESS data {rel!r} not found at {path} (set EMORAY_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def ray_local(s3):
    """A local Ray cluster of 2 CPUs shared by the whole session. Its workers inherit the S3
    server's settings, as a real cluster's nodes carry their object-store credentials."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """A real S3 server (SeaweedFS on 127.0.0.1) with bucket ``emoray-test``; its credentials
    are exported to the environment for the session, so emoray reaches it as a user would."""
    from s3server import seaweedfs

    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        saved = {k: os.environ.get(k) for k in server.env()}
        os.environ.update(server.env())
        try:
            yield server
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    """Two actors, all 60 speech trials, audio-only WAVs plus small (320x180) full-AV and
    video-only MP4s for a third of the trials."""
    from emoray.synth.corpus import synthesize_corpus

    root = tmp_path_factory.mktemp("synth")
    synthesize_corpus(root, actors=(1, 2), seed=0, modalities=("audio",))
    synthesize_corpus(root, actors=(1, 2), seed=0, modalities=("video", "av"),
                      emotions=(1, 3, 5, 6), repetitions=(1,), intensities=(1,),
                      width=320, height=180, stills_dir=None)
    return root
