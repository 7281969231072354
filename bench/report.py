"""Writes one benchmark's section into docs/benchmarks.md, leaving the other sections as they are."""

from __future__ import annotations

import fcntl
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

REPORT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Each section is written by `python -m bench NAME` (all of them: `make bench`). Ratios are
measured against a baseline taken in the same run, since these machines are noisy; absolute
times only mean something on the machine named in the section.
"""


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def write_section(name: str, markdown: str) -> Path:
    """Replace (or append) the section between this benchmark's markers."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    stamp = f"_Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; `python -m bench {name}`._"
    block = f"{start}\n{markdown.strip()}\n\n{stamp}\n{end}"
    with open(REPORT.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = REPORT.read_text() if REPORT.exists() else HEADER
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text.rstrip()}\n\n{block}\n"
        REPORT.write_text(text)
    return REPORT
