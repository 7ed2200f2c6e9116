"""Where a hot path's Python time goes: the load benchmark's requests, run in-process under cProfile.

    .venv/bin/python bench/hot_paths.py --scenario "ITI-67 search + audit" [--requests 300] [--top 25]

The same database, fixture and requests as bench/load.py (``carnet_bench``, production settings), sent
through the app's test client in this process: a warm-up, then ``--requests`` requests under cProfile.
Prints the statements of one request; then, per request, the CPU milliseconds of this process without
the profiler (the first half of ``--requests``) and, for the second half under cProfile, Python function
calls, SQL statements and CPU; then the functions with the most own time and the most cumulative time. It measures the work, not the speed under
load (no gunicorn, no concurrency): use it to find what to remove, and bench/load.py to see what it gave.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402
import serve_local  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", help="a scenario of bench/load.py (repeatable; default: all)")
    parser.add_argument("--patients", type=int, default=2000, help="seed the database up to this many patients")
    parser.add_argument("--requests", type=int, default=300, help="requests profiled per scenario")
    parser.add_argument("--warm", type=int, default=30, help="requests sent first, not profiled")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--callers", action="append", default=[],
                        help="also print who calls the functions matching this (repeatable)")
    args = parser.parse_args()

    os.environ.update(serve_local.bench_env())
    serve_local.ensure_database()
    fixture = load.prepare(args.patients, max(args.requests, 400), args.seed)
    app = load._app()
    from sqlalchemy import event

    from backend.db import get_db

    statements = [0]
    shown: list[str] = []

    @event.listens_for(get_db(app).engine, "before_cursor_execute")
    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements[0] += 1
        shown.append(statement)

    plan = load.scenarios(fixture)
    plan.pop(load.LOGIN)
    client = app.test_client()
    for name, requests in plan.items():
        if args.scenario and name not in args.scenario:
            continue
        needed = args.warm + args.requests
        chosen = [requests[i % len(requests)] for i in range(needed)]
        if name == "booking":  # each booking its own slot
            chosen = requests[:needed]

        def send(request: load.Request) -> int:
            response = client.open(request.path, method=request.method, headers=request.headers, data=request.body)
            return response.status_code

        for request in chosen[:args.warm]:
            send(request)
        shown.clear()
        send(chosen[args.warm])
        print(f"\n## {name}: the statements of one request")
        for number, statement in enumerate(shown, 1):
            print(f"{number:3}. {' '.join(statement.split())[:300]}")
        rest = chosen[args.warm + 1:]
        plain, measured = rest[:len(rest) // 2], rest[len(rest) // 2:]  # the first half without the profiler
        cpu = time.process_time()
        for request in plain:
            send(request)
        plain_ms = (time.process_time() - cpu) * 1000 / max(1, len(plain))
        statements[0] = 0
        profiler = cProfile.Profile()
        cpu = time.process_time()
        profiler.enable()
        statuses = [send(request) for request in measured]
        profiler.disable()
        cpu = time.process_time() - cpu
        stats = pstats.Stats(profiler)
        n = len(measured)
        print(f"\n## {name}: {n} requests, statuses {sorted(set(statuses))}; per request: "
              f"{stats.total_calls / n:,.0f} Python calls, {statements[0] / n:.1f} SQL statements, "
              f"{cpu * 1000 / n:.2f} ms CPU under the profiler, {plain_ms:.2f} ms without it "
              f"({len(plain)} requests before; this process, one request at a time)")
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
            print(out.getvalue().split("\n", 6)[-1])
        for pattern in args.callers:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_callers(pattern)
            print(out.getvalue())


if __name__ == "__main__":
    main()
