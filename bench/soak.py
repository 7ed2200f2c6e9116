"""Soak: a real `carnet serve` on loopback held under a steady mix of patient requests for a bounded time,
reporting the error rate and the server's memory growth (RSS of gunicorn's master and workers, start of the
load vs end).

    .venv/bin/python bench/soak.py                      # 1 minute, SQLite in a temporary folder
    .venv/bin/python bench/soak.py --minutes 30 --concurrency 8 --database-url postgresql://…/soak

The database must be empty or new (SQLite: a temporary file by default): the script creates the patient it
signs in with (`carnet patient create`, then activation and TOTP over HTTP, as the app does). It sends
traffic to 127.0.0.1 only, stops by itself, and exits 1 when a request failed (5xx, refused, timed out).

``LiveServer`` is also what the fault and log tests use to run a real server.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import requests

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only: never a target outside this machine
PASSWORD = "Soak-Lune-Verte-42!"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def carnet_env(database_url: str, instance: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "CARNET_DATABASE_URL": database_url, "CARNET_INSTANCE_PATH": str(instance),
           "CARNET_TASK_QUEUE": "immediate", "PYTHONUNBUFFERED": "1"}
    env.setdefault("CARNET_SECRET_KEY", "soak-secret-key-" + "s" * 16)
    env.setdefault("CARNET_MASTER_KEY", base64.b64encode(b"soak-master-key-32-bytes-long-!!").decode())
    env.update(extra)
    return env


def carnet(env: dict[str, str], *args: str) -> str:
    """Run one `carnet` command; return its standard output."""
    done = subprocess.run([sys.executable, "-m", "backend.tools.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"carnet {' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


@dataclass
class LiveServer:
    """`carnet serve` in its own process group, on a free loopback port; stderr kept in a file."""

    env: dict[str, str]
    log_path: Path
    workers: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    launcher: list[str] = field(default_factory=lambda: [sys.executable, "-m", "backend.tools.cli"])  # `carnet`

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 60) -> LiveServer:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*self.launcher, "serve", "--host", HOST, "--port", str(self.port),
             "--workers", str(self.workers), "--no-worker"],
            env=self.env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}): {self.log_path.read_text()[-800:]}")
            try:
                if requests.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the server did not answer in time")

    def pids(self) -> list[int]:
        """The master and its workers."""
        if self.process is None or self.process.poll() is not None:
            return []
        master = self.process.pid
        out = [master]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == master:
                    out.append(int(entry.name))
        return out

    def rss_kib(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total

    def kill9(self) -> None:
        """SIGKILL the whole process group: master and workers die at once, mid-request."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill9()

    def __enter__(self) -> LiveServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def sign_up(env: dict[str, str], base_url: str, nir: str, birth_date: str = "1984-07-14", sex: str = "F",
            activation_code: str | None = None) -> tuple[dict[str, str], str]:
    """Pre-create a patient with the CLI (unless given the code of one already made), then activate over
    HTTP with a TOTP second factor. Returns (bearer headers, TOTP secret)."""
    http = requests.Session()
    if activation_code is None:
        activation_code = json.loads(carnet(env, "patient", "create", "--nir", nir, "--birth-date", birth_date,
                                            "--family-name", "Soak", "--given-name", "Camille",
                                            "--sex", sex))["activation_code"]
    r = http.post(f"{base_url}/api/v1/activation", json={"nir": nir, "birth_date": birth_date,
                                                         "activation_code": activation_code,
                                                         "password": PASSWORD}, timeout=30)
    r.raise_for_status()
    enrolment = {"Authorization": f"Bearer {r.json()['token']}"}
    r = http.post(f"{base_url}/api/v1/mfa/enrol", json={"method": "totp"}, headers=enrolment, timeout=30)
    r.raise_for_status()
    secret = r.json()["secret"]
    r = http.post(f"{base_url}/api/v1/mfa/confirm", json={"code": pyotp.TOTP(secret).now(), "device_name": "soak"},
                  headers=enrolment, timeout=30)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}, secret


def demo_nir() -> str:
    from backend.identity import nir_key

    first13 = "2840775999001"
    return first13 + nir_key(first13)


# --- the load ----------------------------------------------------------------------------------------------

def _one_request(http: requests.Session, base: str, headers: dict[str, str], rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.10:  # a deposit: the heaviest write
        body = f"Note de suivi {rng.randrange(10**9)}\n".encode()
        r = http.post(f"{base}/api/v1/record/documents", headers=headers, timeout=30,
                      files={"file": ("note.txt", body, "text/plain")}, data={"category": "AUTR_DOC"})
    elif roll < 0.35:
        r = http.get(f"{base}/api/v1/record/documents", headers=headers, params={"limit": 20}, timeout=30)
    elif roll < 0.55:
        r = http.get(f"{base}/api/v1/home", headers=headers, timeout=30)
    elif roll < 0.75:
        r = http.get(f"{base}/api/v1/notifications", headers=headers, timeout=30)
    else:
        r = http.get(f"{base}/api/v1/me", headers=headers, timeout=30)
    return r.status_code


def hold_load(base: str, headers: dict[str, str], seconds: float, concurrency: int, seed: int = 0) -> Counter[str]:
    """Each client sends requests one after another until the time is up. Outcomes by status ("error:…" for
    a refused or timed-out connection)."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        http = requests.Session()
        local: Counter[str] = Counter()
        while time.monotonic() < deadline:
            try:
                local[str(_one_request(http, base, headers, rng))] += 1
            except requests.RequestException as exc:
                local[f"error:{type(exc).__name__}"] += 1
        with lock:
            outcomes.update(local)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def soak(seconds: float, concurrency: int = 4, database_url: str | None = None, workers: int = 1,
         workdir: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="carnet-soak-") as tmp:
        root = workdir or Path(tmp)
        url = database_url or f"sqlite:///{root / 'soak.db'}"
        env = carnet_env(url, root / "instance")
        carnet(env, "db", "upgrade")
        with LiveServer(env, root / "server.log", workers=workers) as server:
            headers, _ = sign_up(env, server.url, demo_nir())
            hold_load(server.url, headers, min(5.0, seconds / 10), concurrency, seed=1)  # warm-up, not counted
            rss_start = server.rss_kib()
            started = time.monotonic()
            outcomes = hold_load(server.url, headers, seconds, concurrency, seed=2)
            elapsed = time.monotonic() - started
            rss_end = server.rss_kib()
        total = sum(outcomes.values())
        errors = sum(n for status, n in outcomes.items() if not status.startswith("2"))
        return {
            "seconds": round(elapsed, 1), "concurrency": concurrency, "workers": workers,
            "database": url.split(":", 1)[0], "requests": total,
            "requests_per_second": round(total / elapsed, 1) if elapsed else 0.0,
            "errors": errors, "error_rate": round(errors / total, 6) if total else 1.0,
            "outcomes": dict(sorted(outcomes.items())),
            "rss_start_kib": rss_start, "rss_end_kib": rss_end, "rss_growth_kib": rss_end - rss_start,
            "rss_growth_percent": round(100 * (rss_end - rss_start) / rss_start, 1) if rss_start else None,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="how long to hold the load (default 1)")
    parser.add_argument("--seconds", type=float, help="the same in seconds (overrides --minutes)")
    parser.add_argument("--concurrency", type=int, default=4, help="clients sending requests at once")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    report = soak(seconds, args.concurrency, args.database_url, args.workers)
    print(json.dumps(report, indent=1))
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
