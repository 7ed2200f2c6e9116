"""Load benchmark of production mode (gunicorn, PostgreSQL, Redis) on loopback, with wrk.

    make bench-load                       # or: .venv/bin/python bench/load.py [--patients 20000] [--duration 10]

What it does, bounded in time and addresses (127.0.0.1 only):
1. Migrates the benchmark database (``carnet_bench``, see bench/serve_local.py) and seeds it with
   ``carnet bench seed`` up to ``--patients`` patients (a long tail of documents per patient).
2. Picks patients at random and gives each a device session; issues professional tokens for
   professionals these patients consented to; opens fresh schedules to book; seeds probe patients with
   exactly 1, 100 and 1,000 documents.
3. Starts ``carnet serve --production`` and, for each scenario — home screen, documents page, a document
   download, a professional ITI-67 search (with its audit write), a booking, a login — runs wrk with
   ``--connections`` clients for ``--duration`` seconds right after the same run against ``/api/health``
   (the framework floor), so each ratio compares two measurements taken seconds apart.
   For home, the documents page, a document download, ITI-67 and booking it also runs the **raw floor**
   (bench/raw_floor.py): the SQL statements the endpoint itself runs (captured from it in-process before
   the runs), answered by a minimal WSGI handler on raw psycopg with prepared statements, under the same
   gunicorn settings, serialised with the same JSON provider (a download: the blob read, unwrapped,
   opened and checked with the app's primitives) — right after our run, with the same requests; CPU per
   request of both and the ratio show what the framework, the ORM and our code add.
4. Reads each gunicorn worker's memory (RSS and PSS) and measures the endpoints that must not grow with
   the record (home, documents page, ITI-67) for patients holding 1, 100 and 1,000 documents.
5. Prints a table (and ``--json FILE`` writes the numbers; each scenario's floor under ``raw_floor``),
   stops the servers, empties Redis db 12.

wrk comes from Debian (``apt-get install wrk``; ``make bench-load`` installs it when run as root).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raw_floor  # noqa: E402
import serve_local  # noqa: E402

ROOT = serve_local.ROOT
HOST = "127.0.0.1"
INS_OID = "1.2.250.1.213.1.4.8"

# issue #17: CPU per request within 2× of the raw floor's (reads), ITI-67 and booking at 300/s, reads' p99
AIMS = {"floor_ratio": 2.0, "p99_ms": 100.0, "iti67_rps": 300.0, "booking_rps": 300.0}
READS = ("home", "documents page", "document download", "ITI-67 search + audit")
LOGIN = "login (argon2id)"
PAGE = 20  # items per page asked by the paged scenarios


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    floor_rps: float = 0.0
    floor_p50_ms: float = 0.0
    floor_p99_ms: float = 0.0
    app_cpu_ms: float = 0.0   # gunicorn workers' CPU per request
    db_cpu_ms: float = 0.0    # the server's PostgreSQL backends' CPU per request
    raw_floor: dict[str, float] | None = None  # the same statements by a minimal handler (bench/raw_floor.py)

    @property
    def ratio(self) -> float:
        return self.rps / self.floor_rps if self.floor_rps else 0.0


# --- wrk ------------------------------------------------------------------------------------------------------

LUA = r"""
-- requests come from a file (one per line, fields separated by \31): no limit on their number
local reqs = {}
local idx, step = 1, 1
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  for line in io.lines("%(path)s") do
    local f = {}
    for field in (line .. "\31"):gmatch("(.-)\31") do table.insert(f, field) end
    local headers = {}
    for i = 4, #f, 2 do headers[f[i]] = f[i + 1] end
    local body = nil
    if f[3] ~= "" then body = f[3] end
    table.insert(reqs, {f[1], f[2], headers, body})
  end
  step = %(threads)d
  idx = (tid - 1) %% #reqs + 1
end
function request()
  local r = reqs[idx]
  idx = idx + step
  if idx > #reqs then idx = (idx - 1) %% #reqs + 1 end
  return wrk.format(r[1], r[2], r[3], r[4])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests":%%d,"duration_us":%%d,"status_errors":%%d,"socket_errors":%%d,' ..
    '"p50_us":%%d,"p99_us":%%d}\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""
SEP = "\x1f"


def request_lines(requests: list[Request]) -> str:
    lines = []
    for r in requests:
        fields = [r.method, r.path, r.body or ""]
        for key, value in r.headers.items():
            fields += [key, value]
        if any(SEP in x or "\n" in x for x in fields):
            raise ValueError("a request field holds a separator or a newline")
        lines.append(SEP.join(fields))
    return "\n".join(lines) + "\n"


def wrk(base: str, requests: list[Request], *, name: str, duration: int, connections: int, threads: int) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        data, script = Path(tmp) / "requests.txt", Path(tmp) / "script.lua"
        data.write_text(request_lines(requests))
        script.write_text(LUA % {"path": data, "threads": threads})
        done = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
                               "--timeout", "10s", "-s", str(script), base],
                              capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed on {name}: {done.stdout[-500:]} {done.stderr[-500:]}")
    out = done.stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    data = json.loads(line[len("RESULT "):])
    seconds = data["duration_us"] / 1e6
    return Result(name, data["requests"], seconds, data["requests"] / seconds, data["p50_us"] / 1000,
                  data["p99_us"] / 1000, data["status_errors"] + data["socket_errors"])


class CpuMeter:
    """CPU time (user + system) spent by the gunicorn workers and by their PostgreSQL backends during a
    run: per request, it tells where the work goes even when other processes share the machine."""

    def __init__(self, master_pid: int, *, floor: bool = False) -> None:
        import psycopg

        self.master_pid = master_pid
        self.floor = floor  # the raw floor's backends (application_name) or the app's (all the others)
        self.conn = psycopg.connect(serve_local.DATABASE_URL, autocommit=True)
        self.tick = os.sysconf("SC_CLK_TCK")

    def _cpu(self, pid: int, children: bool = False) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        if children:  # cutime + cstime: what the process's exited (reaped) children used
            return (int(fields[13]) + int(fields[14])) / self.tick
        return (int(fields[11]) + int(fields[12])) / self.tick

    def _pids(self) -> tuple[list[int], list[int]]:
        workers = [int(x) for x in Path(f"/proc/{self.master_pid}/task/{self.master_pid}/children").read_text().split()]
        backends = [row[0] for row in self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' AND (application_name = %s) = %s",
            (raw_floor.APPLICATION_NAME, self.floor))]
        return workers, backends

    def snapshot(self) -> dict[str, dict[int, float]]:
        workers, backends = self._pids()
        # gunicorn replaces a worker after `max_requests` (backend/tools/production.py): the CPU of a worker that
        # exited during a run is in the master's children time (key -1), not lost
        app = {p: self._cpu(p) for p in workers} | {-1: self._cpu(self.master_pid, children=True)}
        return {"app": app, "db": {p: self._cpu(p) for p in backends}}

    def since(self, before: dict[str, dict[int, float]]) -> tuple[float, float]:
        """CPU seconds of the app and of PostgreSQL since ``before``: everything now minus everything then.
        A worker replaced meanwhile is gone from ``after`` and its whole life is in the master's children
        time: its CPU before the run must be taken off too (it was not, and a replacement inside a run
        added the old worker's whole lifetime to it: the 24–35 ms "per request" outliers of 2026-12-07)."""
        after = self.snapshot()
        app = sum(after["app"].values()) - sum(before["app"].values())
        # backends: those of now (the pools keep their connections; one closed meanwhile is not counted)
        db = sum(v - before["db"].get(p, 0.0) for p, v in after["db"].items())
        return app, db

    def close(self) -> None:
        self.conn.close()


def measured(meter: CpuMeter, base: str, requests: list[Request], **run: Any) -> Result:
    before = meter.snapshot()
    result = wrk(base, requests, **run)
    app, db = meter.since(before)
    result.app_cpu_ms = app * 1000 / max(1, result.requests)
    result.db_cpu_ms = db * 1000 / max(1, result.requests)
    return result


def settle(base: str, timeout: float = 120.0) -> None:
    """Wait until the server has finished what the previous run left queued (wrk stops sending, the
    workers do not stop working): /api/health answers in under 50 ms twice in a row."""
    import urllib.request

    deadline, fast = time.monotonic() + timeout, 0
    while fast < 2 and time.monotonic() < deadline:
        started = time.monotonic()
        with urllib.request.urlopen(f"{base}/api/health", timeout=timeout) as response:
            response.read()
        fast = fast + 1 if time.monotonic() - started < 0.05 else 0
        time.sleep(0.2)


# --- data ----------------------------------------------------------------------------------------------------

@dataclass
class Fixture:
    tokens: list[str]                       # patients' access tokens
    nirs: list[str]                         # the same patients' NIRs (login)
    downloads: list[tuple[str, int]]        # (token, a document of theirs)
    searches: list[tuple[str, str]]         # (professional token, patient NIR) with consent
    slots: list[str]                        # free slots, one per booking
    probes: dict[int, dict[str, list[Any]]]  # documents per patient → {"tokens": [...], "searches": [...]}
    plans: dict[str, Any] = field(default_factory=dict)  # the raw floor's statements, per scenario
    patients: int = 0
    documents: int = 0


def _app() -> Any:
    from backend import create_app

    return create_app()


def prepare(patients: int, sample: int, seed_value: int) -> Fixture:
    from sqlalchemy import text

    from backend.tools import benchseed
    from backend.db import get_db

    app = _app()
    engine = get_db(app).engine
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM patient")).scalar_one()
    if have < patients:
        print(f"seeding {patients - have} patients (carnet bench seed)…", file=sys.stderr, flush=True)
        subprocess.run([str(serve_local.BIN / "carnet"), "bench", "seed", "--patients", str(patients - have),
                        "--seed", str(seed_value + have)], env=serve_local.bench_env(), check=True, cwd=ROOT)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT p.id, p.nir FROM patient p WHERE p.state = 'active' AND p.password_hash IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM consent c WHERE c.patient_id = p.id AND c.revoked_at IS NULL) "
            "ORDER BY md5(p.id::text || :salt) LIMIT :n"), {"salt": str(seed_value), "n": sample}).all()
        total_patients = conn.execute(text("SELECT count(*) FROM patient")).scalar_one()
        total_docs = conn.execute(text("SELECT count(*) FROM document")).scalar_one()
    ids = [r.id for r in rows]
    tokens = benchseed.issue_access_tokens(engine, ids)
    by_patient = dict(zip(ids, tokens))
    with engine.connect() as conn:
        docs = conn.execute(text(
            "SELECT DISTINCT ON (patient_id) patient_id, id FROM document WHERE patient_id = ANY(:ids) "
            "AND deleted_at IS NULL AND NOT (invisible_patient AND released_at IS NULL) ORDER BY patient_id, id DESC"),
            {"ids": ids}).all()
    downloads = [(by_patient[d.patient_id], d.id) for d in docs]

    # probe patients: exactly 1, 100 and 1,000 documents each
    probe_sizes = [1, 100, 1000]
    per_size = 8
    report = benchseed.seed(engine, keyring=app.extensions["carnet.keyring"], secret_key=app.config["SECRET_KEY"],
                            blobs=app.extensions["carnet.blobs"], patients=0, exact_docs=[s for s in probe_sizes for _ in range(per_size)], professionals=20,
                            batch=per_size * len(probe_sizes), seed_value=seed_value)
    probe_ids = report.patient_ids
    probe_tokens = benchseed.issue_access_tokens(engine, probe_ids)

    searched = ids + probe_ids
    with engine.connect() as conn:
        pairs = conn.execute(text(
            "SELECT DISTINCT ON (c.patient_id) c.patient_id, c.professional_id, p.nir FROM consent c "
            "JOIN patient p ON p.id = c.patient_id WHERE c.patient_id = ANY(:ids) AND c.revoked_at IS NULL "
            "ORDER BY c.patient_id, c.id"), {"ids": searched}).all()
    pro_ids = sorted({p.professional_id for p in pairs})
    pro_tokens = dict(zip(pro_ids, benchseed.issue_professional_tokens(engine, pro_ids)))
    search_of = {p.patient_id: (pro_tokens[p.professional_id], p.nir) for p in pairs}
    searches = [search_of[i] for i in ids if i in search_of]

    probes: dict[int, dict[str, list[Any]]] = {}
    for k, size in enumerate(probe_sizes):
        chunk = slice(k * per_size, (k + 1) * per_size)
        probes[size] = {"tokens": probe_tokens[chunk],
                        "searches": [search_of[i] for i in probe_ids[chunk] if i in search_of]}
    slots = benchseed.bookable_schedules(engine, 40, days=30)
    random.Random(seed_value).shuffle(slots)
    plans = capture_plans(app, tokens, searches, slots, downloads)  # takes the slots it books out of the list
    engine.dispose()
    # the steady state autovacuum would reach: statistics and visibility maps of the fresh rows
    import psycopg

    with psycopg.connect(serve_local.DATABASE_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return Fixture(tokens=tokens, nirs=[r.nir for r in rows], downloads=downloads, searches=searches, slots=slots,
                   probes=probes, plans=plans, patients=total_patients, documents=total_docs)


def capture_plans(app: Any, tokens: list[str], searches: list[tuple[str, str]], slots: list[str],
                  downloads: list[tuple[str, int]]) -> dict[str, Any]:
    """The raw floor's statements, captured from each endpoint in-process (bench/raw_floor.py): a warm-up
    request, then two requests for different patients, professionals and slots (other schedules, other
    days), so that every parameter is explained by what differs between them."""
    from backend.agenda.availability import parse_slot_id

    by_pro: dict[str, tuple[str, str]] = {}
    for pro, nir in searches:
        by_pro.setdefault(pro, (pro, nir))
    pros = list(by_pro.values())[:3]
    if len(tokens) < 3 or len(pros) < 3 or len(downloads) < 3:
        raise SystemExit("the raw floor needs 3 patients and 3 professionals with consent: use a larger --sample")
    chosen: list[str] = []
    # two days ahead or more: a booking then writes both its reminders (a day and two hours before), as
    # most of the benchmark's bookings (spread over 30 days) do
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
    for slot in slots:
        schedule, start = parse_slot_id(slot)
        if start > soon and all(parse_slot_id(c)[0] != schedule and parse_slot_id(c)[1].date() != start.date() for c in chosen):
            chosen.append(slot)
        if len(chosen) == 3:
            break
    for slot in chosen:
        slots.remove(slot)
    plans = {}
    for scenario in raw_floor.SCENARIOS:
        subjects = [raw_floor.Subject(token=tokens[i], pro_token=pros[i][0], nir=pros[i][1],
                                      slot=chosen[i] if len(chosen) == 3 else "") for i in range(3)]
        if scenario == "document download":  # patients holding a document, and one of theirs each
            subjects = [raw_floor.Subject(token=t, document=d) for t, d in downloads[:3]]
        plans[scenario] = raw_floor.capture_plan(app, scenario, *subjects)
        print(f"  raw floor: {scenario}: {len(plans[scenario].steps)} statements captured", file=sys.stderr,
              flush=True)
    return plans


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _search(pro_token: str, nir: str) -> Request:
    return Request("GET", f"/fhir/R4/DocumentReference?patient.identifier=urn:oid:{INS_OID}%7C{nir}&_count={PAGE}",
                   {**_bearer(pro_token), "Accept": "application/fhir+json"})


def scenarios(f: Fixture) -> dict[str, list[Request]]:
    json_headers = {"Content-Type": "application/json"}
    return {
        "home": [Request("GET", "/api/v1/home", _bearer(t)) for t in f.tokens],
        "documents page": [Request("GET", f"/api/v1/record/documents?limit={PAGE}", _bearer(t)) for t in f.tokens],
        "document download": [Request("GET", f"/api/v1/record/documents/{d}/content", _bearer(t))
                              for t, d in f.downloads],
        "ITI-67 search + audit": [_search(pro, nir) for pro, nir in f.searches],
        "booking": [Request("POST", "/api/v1/agenda/appointments", {**_bearer(f.tokens[i % len(f.tokens)]),
                                                                     **json_headers},
                            json.dumps({"slot_id": slot})) for i, slot in enumerate(f.slots)],
        LOGIN: [Request("POST", "/api/v1/auth/login", json_headers,
                                     json.dumps({"nir": nir, "password": _password()})) for nir in f.nirs],
    }


def _password() -> str:
    from backend.tools.benchseed import BENCH_PASSWORD

    return BENCH_PASSWORD


# --- server ---------------------------------------------------------------------------------------------------

def worker_memory(master_pid: int) -> list[dict[str, float]]:
    """RSS and PSS (MiB) of each gunicorn worker (the children of the master process)."""
    out = []
    for child in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split():
        try:
            status = Path(f"/proc/{child}/status").read_text()
            rss = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:"))
            pss = next(int(x.split()[1]) for x in Path(f"/proc/{child}/smaps_rollup").read_text().splitlines()
                       if x.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
        out.append({"pid": int(child), "rss_mib": rss / 1024, "pss_mib": pss / 1024})
    return out


def start_floor(plan_file: Path, port: int, workers: int, threads: int) -> subprocess.Popen[bytes]:
    """The raw floor's gunicorn (bench/raw_floor.py serve), ready when it answers on its port."""
    import urllib.error
    import urllib.request

    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("raw_floor.py")), "serve", "--plan",
                                str(plan_file), "--dsn", raw_floor.psycopg_dsn(serve_local.DATABASE_URL), "--port",
                                str(port), "--workers", str(workers), "--threads", str(threads)],
                               env=serve_local.bench_env(PYTHONPATH=str(ROOT)), cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the raw floor exited with code {process.returncode}")
        try:
            urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=2)
        except urllib.error.HTTPError:
            return process  # it answers (404: not a floor route)
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise RuntimeError("the raw floor did not start")


def _cpu_ratio(ours: Result, floor: Result) -> float:
    """Our CPU per request (app and PostgreSQL) over the floor's: 1.0 would be nothing added."""
    theirs = floor.app_cpu_ms + floor.db_cpu_ms
    return (ours.app_cpu_ms + ours.db_cpu_ms) / theirs if theirs else 0.0


def flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(serve_local.REDIS_URL)
    client.flushdb()  # db 12: the benchmark's own queue and limits
    client.close()


# --- report ---------------------------------------------------------------------------------------------------

def table(results: list[Result], floors: list[Result], growth: dict[str, dict[int, Result]], memory: list[dict[str, float]],
          memory_after_login: list[dict[str, float]], meta: dict[str, Any]) -> str:
    lines = [f"Carnet load benchmark — {meta['when']} — {meta['connections']} clients, {meta['duration']} s per run, "
             f"{meta['workers']} gunicorn workers × {meta['threads']} threads, {meta['cpus']} CPUs "
             f"(load average before: {meta['load_before']})",
             f"data: {meta['patients']:,} patients, {meta['documents']:,} documents",
             "",
             "| scenario | req/s | p50 ms | p99 ms | errors | /api/health req/s (same run) | ratio "
             "| CPU ms/req: app · PostgreSQL |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.name} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} | "
                     f"{r.floor_rps:,.0f} | {r.ratio:.0%} | {r.app_cpu_ms:.2f} · {r.db_cpu_ms:.2f} |")
    if floors:
        lines.append(f"| /api/health (mean of its runs) | {sum(f.rps for f in floors) / len(floors):,.0f} | "
                     f"{sum(f.p50_ms for f in floors) / len(floors):.1f} | {sum(f.p99_ms for f in floors) / len(floors):.1f} "
                     f"| {sum(f.errors for f in floors)} | | 100% | {sum(f.app_cpu_ms for f in floors) / len(floors):.2f} · "
                     f"{sum(f.db_cpu_ms for f in floors) / len(floors):.2f} |")
    with_floor = [r for r in results if r.raw_floor]
    if with_floor:
        lines += ["", "Raw floor: the endpoint's own SQL statements (captured from it), minimal WSGI handler, raw "
                  "psycopg, prepared statements, same gunicorn settings and JSON serialiser:", "",
                  "| scenario | statements | ours req/s | floor req/s | ours CPU ms/req: app · PG | "
                  "floor CPU ms/req: app · PG | CPU ratio ours/floor |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in with_floor:
            f = r.raw_floor or {}
            lines.append(f"| {r.name} | {f['statements']:.0f} | {r.rps:,.0f} | {f['rps']:,.0f} | {r.app_cpu_ms:.2f} · "
                         f"{r.db_cpu_ms:.2f} | {f['app_cpu_ms']:.2f} · {f['db_cpu_ms']:.2f} | {f['cpu_ratio']:.1f}× |")
    if not growth:
        growth = {}
    sizes = list(next(iter(growth.values()))) if growth else []
    lines += ["", "Paged endpoints by record size (documents per patient):", "",
              "| endpoint | " + " | ".join(f"{n:,} docs: req/s · p50 ms · CPU ms/req" for n in sizes) + " |",
              "|---|" + "---:|" * len(sizes)]
    for name, by_size in growth.items():
        cells = [f"{r.rps:,.0f} · {r.p50_ms:.1f} · {r.app_cpu_ms + r.db_cpu_ms:.2f}" for r in by_size.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Memory per gunicorn worker after the runs: " + ", ".join(
        f"RSS {m['rss_mib']:.0f} MiB (PSS {m['pss_mib']:.0f} MiB)" for m in memory)]
    if memory_after_login:
        lines.append("… and after 16 concurrent logins (argon2id, 64 MiB each): " + ", ".join(
            f"RSS {m['rss_mib']:.0f} MiB" for m in memory_after_login))
    return "\n".join(lines)


def aims(results: list[Result], growth: dict[str, dict[int, Result]]) -> list[str]:
    notes = []
    for r in results:
        if r.name in READS and r.p99_ms >= AIMS["p99_ms"]:
            notes.append(f"MISSED: {r.name} p99 {r.p99_ms:.0f} ms (aim < 100 ms)")
        if r.name.startswith("ITI-67") and r.rps < AIMS["iti67_rps"]:
            notes.append(f"MISSED: ITI-67 at {r.rps:.0f} req/s (aim ≥ 300)")
        if r.name == "booking" and r.rps < AIMS["booking_rps"]:
            notes.append(f"MISSED: booking at {r.rps:.0f} req/s (aim ≥ 300)")
        if r.errors:
            notes.append(f"ERRORS: {r.name} had {r.errors} failed requests")
        if r.raw_floor and r.raw_floor["errors"]:
            notes.append(f"ERRORS: the raw floor of {r.name} had {r.raw_floor['errors']:.0f} failed requests")
        if r.name in READS and r.raw_floor and r.raw_floor["cpu_ratio"] > AIMS["floor_ratio"]:
            notes.append(f"MISSED: {r.name} costs {r.raw_floor['cpu_ratio']:.1f}× the raw floor's CPU (aim ≤ 2×)")
    for name, by_size in growth.items():
        # from the smallest record that fills a page (a 1-document record returns 1 item, not 20)
        sizes = [n for n in by_size if n >= PAGE] or list(by_size)
        small, large = by_size[sizes[0]], by_size[sizes[-1]]
        # judged on the work per request (CPU of the app and of PostgreSQL): latency on a shared machine
        # moves with everybody else's load
        cpu_small, cpu_large = small.app_cpu_ms + small.db_cpu_ms, large.app_cpu_ms + large.db_cpu_ms
        if cpu_large > 1.3 * cpu_small + 0.5:
            notes.append(f"GROWS: {name} {cpu_small:.2f} → {cpu_large:.2f} ms CPU per request from {sizes[0]} to "
                         f"{sizes[-1]} documents")
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=20000, help="seed the database up to this many patients")
    parser.add_argument("--sample", type=int, default=400, help="patients the clients act as")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (each scenario and its floor)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", action="append", help="run only these scenarios (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    if args.duration > 120 or args.connections > 256:
        parser.error("bounded benchmark: --duration ≤ 120 s and --connections ≤ 256")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `apt-get install wrk` (make bench-load does it when run as root)")

    os.environ.update(serve_local.bench_env())
    serve_local.ensure_database()
    fixture = prepare(args.patients, args.sample, args.seed)
    args.port = args.port or serve_local.free_port()
    base = f"http://{HOST}:{args.port}"
    run = dict(duration=args.duration, connections=args.connections, threads=args.wrk_threads)
    meta = {"when": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "connections": args.connections,
            "duration": args.duration, "workers": args.workers, "threads": args.threads, "cpus": os.cpu_count(),
            "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()), "patients": fixture.patients,
            "documents": fixture.documents}
    server = serve_local.start(args.port, args.workers, args.threads)
    floor_port = serve_local.free_port()
    floor_base = f"http://{HOST}:{floor_port}"
    plan_file = Path(tempfile.mkdtemp(prefix="carnet-floor-")) / "plans.pickle"
    raw_floor.save(fixture.plans, str(plan_file))
    floor_server = start_floor(plan_file, floor_port, args.workers, args.threads)
    health = [Request("GET", "/api/health")]
    results: list[Result] = []
    floors: list[Result] = []
    growth: dict[str, dict[int, Result]] = {}
    memory: list[dict[str, float]] = []
    memory_after_login: list[dict[str, float]] = []
    try:
        meter = CpuMeter(server.pid)
        floor_meter = CpuMeter(floor_server.pid, floor=True)
        wrk(base, health, name="warm-up", **{**run, "duration": 3})

        def pair(name: str, requests: list[Request]) -> None:
            warm = requests
            floor_warm = floor_requests = requests if name in fixture.plans else []
            if name == "booking":  # a slot booked while warming up would answer 409 in the measured run
                quarter = len(requests) // 4  # our warm-up, our run, the floor's warm-up, the floor's run
                warm, requests, floor_warm, floor_requests = (requests[:quarter], requests[quarter:2 * quarter],
                                                              requests[2 * quarter:3 * quarter],
                                                              requests[3 * quarter:])
            settle(base)
            wrk(base, warm, name=name, **{**run, "duration": 2})  # warm the workers' paths and caches
            settle(base)
            floor = measured(meter, base, health, name="/api/health", **run)
            result = measured(meter, base, requests, name=name, **run)
            result.floor_rps, result.floor_p50_ms, result.floor_p99_ms = floor.rps, floor.p50_ms, floor.p99_ms
            if floor_requests:
                settle(base)
                wrk(floor_base, floor_warm, name=f"{name} (raw floor)", **{**run, "duration": 2})
                raw = measured(floor_meter, floor_base, floor_requests, name=f"{name} (raw floor)", **run)
                result.raw_floor = {"rps": raw.rps, "p50_ms": raw.p50_ms, "p99_ms": raw.p99_ms, "errors": raw.errors,
                                    "requests": raw.requests, "app_cpu_ms": raw.app_cpu_ms, "db_cpu_ms": raw.db_cpu_ms,
                                    "statements": len(fixture.plans[name].steps),
                                    "cpu_ratio": _cpu_ratio(result, raw)}
            results.append(result)
            floors.append(floor)
            print(f"  {name}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms; /api/health {floor.rps:,.0f} req/s"
                  + (f"; raw floor {result.raw_floor['rps']:,.0f} req/s" if result.raw_floor else ""),
                  file=sys.stderr, flush=True)

        plan = scenarios(fixture)
        login = plan.pop(LOGIN)
        for name, requests in plan.items():
            if not args.only or name in args.only:
                pair(name, requests)
        paged = {"home": lambda p: [Request("GET", "/api/v1/home", _bearer(t)) for t in p["tokens"]],
                 "documents page": lambda p: [Request("GET", f"/api/v1/record/documents?limit={PAGE}", _bearer(t))
                                              for t in p["tokens"]],
                 "ITI-67 search + audit": lambda p: [_search(pro, nir) for pro, nir in p["searches"]]}
        if not args.only or "growth" in args.only:
            for name, make in paged.items():
                growth[name] = {}
                for size, probe in fixture.probes.items():
                    settle(base)
                    growth[name][size] = measured(meter, base, make(probe), name=f"{name} ({size})",
                                                  **{**run, "duration": max(3, args.duration // 2)})
        memory = worker_memory(server.pid)
        # last: argon2id keeps the workers busy after wrk stops, and its memory shows in the workers' RSS
        if not args.only or LOGIN in args.only:
            pair(LOGIN, login)
            settle(base)
            memory_after_login = worker_memory(server.pid)
        meter.close()
        floor_meter.close()
    finally:
        server.terminate()
        floor_server.terminate()
        server.wait(timeout=60)
        floor_server.wait(timeout=60)
        shutil.rmtree(plan_file.parent, ignore_errors=True)
        flush_redis()
    print(table(results, floors, growth, memory, memory_after_login, meta))
    notes = aims(results, growth)
    print("\n".join(notes) if notes else "every aim met")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": [{**asdict(r), "ratio": r.ratio} for r in results],
                                         "floors": [asdict(f) for f in floors],
                                         "growth": {k: {str(s): asdict(r) for s, r in v.items()}
                                                    for k, v in growth.items()},
                                         "memory": memory, "memory_after_login": memory_after_login,
                                         "notes": notes}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
