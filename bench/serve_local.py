"""Run Carnet locally the way production runs it, for the benchmarks: ``carnet serve --production``
(gunicorn) on loopback against a PostgreSQL database of its own (``carnet_bench``, created if missing)
and Redis db 12 for the queue and the rate limits. Keys live in ``instance/bench/`` (made once, mode 600).

    .venv/bin/python bench/serve_local.py [--workers 2] [--threads 8] [--port P]   # serves until Ctrl-C

``bench/load.py`` uses :func:`bench_env` and :func:`start` from here.
Settings: ``BENCH_DATABASE_URL`` (default postgresql://postgres@127.0.0.1:5432/carnet_bench),
``BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/12), ``BENCH_BLOB_DIR`` (default instance/bench/blobs).
"""
from __future__ import annotations

import argparse
import base64
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
INSTANCE = ROOT / "instance" / "bench"
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/carnet_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def _key_file(name: str, make: str) -> Path:
    path = INSTANCE / name
    if not path.exists():
        INSTANCE.mkdir(parents=True, exist_ok=True)
        path.write_text(make + "\n")
        path.chmod(0o600)
    return path


def bench_env(**extra: str) -> dict[str, str]:
    """The production-mode environment on this machine's loopback services."""
    secret = _key_file("secret_key", secrets.token_urlsafe(48))
    master = _key_file("master_key", base64.b64encode(os.urandom(32)).decode())
    return {**os.environ, "CARNET_INSTANCE_PATH": str(INSTANCE), "CARNET_DATABASE_URL": DATABASE_URL,
            "CARNET_TASK_QUEUE": "redis", "CARNET_REDIS_URL": REDIS_URL,
            "CARNET_SECRET_KEY_FILE": str(secret), "CARNET_MASTER_KEY_FILE": str(master),
            # documents' bytes in a directory of this machine, named explicitly (production mode asks for a
            # shared store: this one machine is all there is); BENCH_BLOB_DIR to put it elsewhere
            "CARNET_BLOB_STORE": "file", "CARNET_BLOB_DIR": os.environ.get("BENCH_BLOB_DIR", str(INSTANCE / "blobs")),
            # the production recommendation (docs/deploy.md, "Connections")
            "CARNET_DB_POOL_PRE_PING": "false", **extra}


def ensure_database(url: str = DATABASE_URL) -> None:
    """Create the benchmark database when missing (never the tests' database), then migrate it."""
    import psycopg

    base, _, name = url.rpartition("/")
    name = name.split("?")[0]
    if name in {"test", "postgres"}:
        raise SystemExit(f"refusing to benchmark in the {name!r} database: use a database of its own")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([str(BIN / "carnet"), "db", "upgrade"], env=bench_env(), check=True, cwd=ROOT)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base_url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base_url}/api/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server at {base_url} did not become ready in {timeout:.0f} s")
        time.sleep(0.3)


def start(port: int, workers: int, threads: int, **extra_env: str) -> subprocess.Popen[bytes]:
    """Start `carnet serve --production` on 127.0.0.1:port and wait until /api/ready answers."""
    process = subprocess.Popen([str(BIN / "carnet"), "serve", "--production", "--host", "127.0.0.1", "--port", str(port),
                                "--workers", str(workers), "--threads", str(threads)],
                               env=bench_env(**extra_env), cwd=ROOT)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process=process)
    except BaseException:
        process.terminate()
        process.wait(timeout=30)
        raise
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    ensure_database()
    args.port = args.port or free_port()
    process = start(args.port, args.workers, args.threads)
    print(f"Carnet (production mode) on http://127.0.0.1:{args.port}/api/v1 — Ctrl-C stops it", file=sys.stderr)
    try:
        process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
