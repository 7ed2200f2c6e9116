"""The soak script, briefly: a real server under a steady mix of requests, no failed request, and a report
of memory growth. By hand, for minutes: ``.venv/bin/python bench/soak.py --minutes 30``."""
from __future__ import annotations

from pathlib import Path

from bench.soak import soak


def test_a_short_soak_has_no_errors_and_reports_memory(tmp_path: Path) -> None:
    report = soak(seconds=6, concurrency=3, workdir=tmp_path)
    assert report["requests"] > 20, report
    assert report["errors"] == 0 and report["error_rate"] == 0.0, report
    assert report["outcomes"].get("201", 0) > 0, report  # deposits were part of the mix
    assert report["rss_start_kib"] > 0 and report["rss_end_kib"] > 0, report
    print(f"\nsoak: {report}")
