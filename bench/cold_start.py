"""Cold start of the mobile app: process start → home screen drawn with the patient's data, and memory.

    .venv/bin/python bench/cold_start.py [--rounds 5]

A local backend (``carnet serve`` on loopback, throw-away SQLite) holds one activated patient; the app
starts in a fresh process under the current ``DISPLAY`` or an Xvfb of its own, already holding that
patient's access token (the sign-in screens are not part of a cold start: a real app keeps the session),
opens home, and reports when the first frame showing home in place (no transition running) with the data of
``/home`` (and the record section) has been swapped to the screen: the clock starts in the parent just before
``Popen``. Baseline, measured in the same run and interleaved: a bare Kivy app with the app's Kivy settings
(``mobile.startup.configure_kivy``), reporting when its first frame, one label, has been swapped. Both run with
their bytecode cached (an installed app has its ``.pyc``), in a cache of the bench's own after one warm-up run
of each that is not counted. Prints the medians in seconds (wall clock, and CPU time of the child), the ratio,
and the peak RSS of each.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Both children report from the window's ``flip`` (after the buffer swap), for the first frame that shows
# what they wait for; ``cpu`` is the user + system time of the child (all its threads) until then.
REPORT = r'''
import json, resource, time

def report(**extra):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("BENCH " + json.dumps({"t": time.time(), "rss_kb": usage.ru_maxrss,
                                 "cpu": usage.ru_utime + usage.ru_stime, **extra}), flush=True)

def report_on_first_frame_where(condition, app, **extra):
    from kivy.clock import Clock
    from kivy.core.window import Window
    swap = Window.flip

    def flip():
        swap()
        if condition():
            report(**{key: value() for key, value in extra.items()})
            Window.flip = swap
            Clock.schedule_once(lambda _dt: app.stop(), 0)

    Window.flip = flip
'''

APP_CHILD = REPORT + r'''
import os
from mobile.main import CarnetApp, main

class BenchApp(CarnetApp):
    def on_start(self):
        self.client.token = os.environ["BENCH_TOKEN"]
        self.signed_in_as(os.environ["BENCH_NAME"])
        home, manager = self.manager.get_screen("home"), self.manager
        report_on_first_frame_where(
            lambda: home.loaded and manager.current == "home" and not manager.transition.is_active, self,
            name=lambda: self.given_name)

main(BenchApp)  # as ``python -m mobile`` (preferences, text size, CARNET_API_URL), with a session at start
'''

BASELINE_CHILD = REPORT + r'''
from mobile.startup import configure_kivy  # Kivy-free module: the app's Kivy settings, nothing else
configure_kivy()

from kivy.app import App
from kivy.core.window import Window
from kivy.uix.label import Label

class Bare(App):
    def build(self):
        Window.size = (400, 760)  # as CarnetApp.build does on a desktop
        return Label(text="Carnet")
    def on_start(self):
        report_on_first_frame_where(lambda: True, self)

Bare().run()
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def carnet(env: dict, *args: str) -> str:
    return subprocess.run([str(BIN / "carnet"), *args], env=env, check=True, capture_output=True, text=True).stdout


def start_backend(workdir: Path) -> tuple[subprocess.Popen, str, dict]:
    env = {**os.environ, "CARNET_DATABASE_URL": f"sqlite:///{workdir / 'carnet.db'}",
           "CARNET_SECRET_KEY": secrets.token_hex(16),
           "CARNET_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}
    carnet(env, "db", "upgrade")
    port = free_port()
    server = subprocess.Popen([str(BIN / "carnet"), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/health", timeout=2)
            return server, url, env
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("the backend did not start")
            time.sleep(0.3)


def signed_in_patient(env: dict, url: str) -> tuple[str, str]:
    """An activated patient with TOTP, signed in: (access token, given name)."""
    import pyotp

    sys.path.insert(0, str(ROOT))
    from mobile.api import CarnetClient

    nir_first13 = "2840763220" + f"{secrets.randbelow(900) + 100:03d}"
    nir = nir_first13 + f"{97 - int(nir_first13) % 97:02d}"
    out = carnet(env, "patient", "create", "--nir", nir, "--birth-date", "1984-07-12", "--family-name", "Durand",
                 "--given-name", "Marie", "--sex", "F")
    code = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])["activation_code"]
    password = "Carnet-Sante-2026!"
    client = CarnetClient(url)
    client.activate(nir, "1984-07-12", code, password)
    totp = pyotp.TOTP(client.enrol_totp()["secret"])
    client.confirm_enrolment(totp.at(time.time() - 30))
    return client.token, "Marie"


def run_child(code: str, env: dict) -> dict:
    script = Path(env["CARNET_DATA_DIR"]).parent / f"child_{abs(hash(code))}.py"
    script.write_text(code)  # Kivy's App wants a source file for its class
    started = time.time()
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if not lines:
        raise SystemExit(f"the app did not report (exit {done.returncode}):\n{done.stderr[-2000:]}")
    report = json.loads(lines[-1][6:])
    report["seconds"] = report["t"] - started
    return report


def warm_up(env: dict) -> None:
    """One run of each child, not counted: bytecode cache written, files in the page cache."""
    for code in (BASELINE_CHILD, APP_CHILD):
        run_child(code, env)


def runs(reports: list[dict]) -> str:
    return ", ".join(format(r["seconds"], ".2f") for r in reports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    xvfb = None
    display = os.environ.get("DISPLAY")
    if not display:
        if not shutil.which("Xvfb"):
            raise SystemExit("no DISPLAY and no Xvfb")
        display = f":{90 + os.getpid() % 100}"
        xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x1000x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    workdir = Path(tempfile.mkdtemp(prefix="carnet-cold-start-"))
    server = None
    try:
        server, url, backend_env = start_backend(workdir)
        token, name = signed_in_patient(backend_env, url)
        env = {**os.environ, "DISPLAY": display, "CARNET_API_URL": url, "CARNET_LANG": "fr",
               "BENCH_TOKEN": token, "BENCH_NAME": name,
               "KIVY_NO_ARGS": "1", "KIVY_LOG_MODE": "PYTHON", "KIVY_NO_CONSOLELOG": "1",
               "CARNET_DATA_DIR": str(workdir / "app"), "PYTHONPATH": str(ROOT),
               # Bytecode cached, as in an installed app, in a cache of the bench's own (not the work tree).
               "PYTHONPYCACHEPREFIX": str(workdir / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        warm_up(env)
        app_runs, base_runs = [], []
        for _ in range(args.rounds):  # interleaved: a burst of load elsewhere hits both
            base_runs.append(run_child(BASELINE_CHILD, env))
            app_runs.append(run_child(APP_CHILD, env))
        app_s = statistics.median(r["seconds"] for r in app_runs)
        base_s = statistics.median(r["seconds"] for r in base_runs)
        app_cpu = statistics.median(r["cpu"] for r in app_runs)
        base_cpu = statistics.median(r["cpu"] for r in base_runs)
        app_mb = max(r["rss_kb"] for r in app_runs) / 1024
        base_mb = max(r["rss_kb"] for r in base_runs) / 1024
        print(f"cold start, process start → home drawn with the patient's data ({args.rounds} rounds, median)")
        print(f"  Carnet home : {app_s:6.2f} s   CPU {app_cpu:5.2f} s   peak RSS {app_mb:6.1f} MB   (runs: "
              f"{runs(app_runs)})")
        print(f"  bare Kivy   : {base_s:6.2f} s   CPU {base_cpu:5.2f} s   peak RSS {base_mb:6.1f} MB   (runs: "
              f"{runs(base_runs)})")
        print(f"  ratio       : {app_s / base_s:6.2f} ×   memory {app_mb / base_mb:.2f} ×")
        print(f"  extra over a bare Kivy window: {app_s - base_s:.2f} s, CPU {app_cpu - base_cpu:.2f} s, "
              f"{app_mb - base_mb:.1f} MB")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
