"""A real Ray head node (``ray start --head --block``) on 127.0.0.1 for ``ray job submit`` tests.

It runs in its own process group with its own auth token and temp dir, and is stopped by
killing that group, so a test never touches other Ray clusters on the machine (``ray stop``
would).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from s3server import _free_ports


def ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


@contextmanager
def ray_head(tmp: Path, num_cpus: int = 2, env: dict | None = None, timeout: float = 90):
    """Yield (dashboard address, environment for clients) of a fresh head node."""
    gcs, dash, agent = _free_ports(3)  # the agent's default port clashes with any other Ray
    head_env = {**os.environ, **(env or {}), "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    head_env.pop("RAY_ADDRESS", None)
    # the cluster's `python` is this environment's, as on a cluster image with emoray installed
    head_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{head_env.get('PATH', '')}"
    temp_dir = Path(tempfile.mkdtemp(prefix="rayhead-", dir="/tmp"))  # AF_UNIX paths are short
    log = open(tmp / "ray-head.log", "wb")
    proc = subprocess.Popen(
        [ray_cli(), "start", "--head", "--block", f"--port={gcs}", "--node-ip-address=127.0.0.1",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--num-cpus={num_cpus}",
         f"--dashboard-agent-listen-port={agent}",
         f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=head_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    client_env = {**head_env, "RAY_ADDRESS": address}
    try:
        _wait(address, client_env, proc, timeout, tmp / "ray-head.log")
        yield address, client_env
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        kill_processes_of(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        log.close()


def _wait(address, env, proc, timeout, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited:\n{log.read_text()[-3000:]}")
        r = subprocess.run([ray_cli(), "job", "list", "--address", address], env=env,
                           capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(1)
    raise RuntimeError(f"Ray head not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def kill_processes_of(temp_dir: Path) -> None:
    """SIGKILL every process that names ``temp_dir`` on its command line or holds a file under
    it: a Ray node's processes that left its process group (workers start their own sessions,
    agents rename themselves and ignore SIGTERM)."""
    name, prefix = str(temp_dir), f"{temp_dir}/"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:  # gone, or not ours to inspect
            continue
        if int(pid) != os.getpid() and (name in cmdline or any(f.startswith(prefix) for f in fds)):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
