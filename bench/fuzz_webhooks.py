"""Bench-sized fuzzing of every webhook endpoint (>= 10,000 cases each), by hand, not in CI.

Runs the fuzz tests with ``CITOYEN_FUZZ_EXAMPLES`` raised (default 10,000) on SQLite
(``--postgres`` for PostgreSQL too): tests/security/test_fuzz_webhooks.py (every Twilio route and
the Telegram webhook), the SMS gateway's webhook (tests/channels/gateway/test_webhook.py) and
WhatsApp messages (tests/channels/whatsapp/test_inbound.py). Then it prints the time taken and
the spread of status codes per endpoint as a Markdown table. The invariants are the test's: no 5xx, and a
refused request leaves every table as it was. Record the figures in docs/security.md.

It takes hours on a shared machine (21 endpoints): ``--report FILE`` keeps each endpoint's line
as it finishes, so a run stopped early still has the figures of the endpoints it completed.

    .venv/bin/python bench/fuzz_webhooks.py [--examples 10000] [--postgres] [-k EXPR]
        [--report FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUZZ_TESTS = "never_fail or never_give_a_5xx"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL as well as SQLite")
    parser.add_argument("-k", default="", help="pytest -k expression (e.g. 'sms')")
    parser.add_argument("--report", type=Path, help="keep the JSON lines here (appended)")
    args = parser.parse_args()
    selection = "" if args.postgres else "sqlite"
    if args.k:
        selection = f"({args.k}) and {selection}" if selection else args.k
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--timeout=0",
        str(ROOT / "tests" / "security" / "test_fuzz_webhooks.py"),
        str(ROOT / "tests" / "channels" / "gateway" / "test_webhook.py"),
        str(ROOT / "tests" / "channels" / "whatsapp" / "test_inbound.py"),
        "-k",
        FUZZ_TESTS,
    ]
    if selection:
        command[-1] = f"({FUZZ_TESTS}) and ({selection})"
    with tempfile.TemporaryDirectory() as tmp:
        report = args.report or Path(tmp) / "statuses.jsonl"
        env = {
            **os.environ,
            "CITOYEN_FUZZ_EXAMPLES": str(args.examples),
            "CITOYEN_FUZZ_REPORT": str(report),
        }
        start = time.monotonic()
        code = subprocess.call(command, cwd=ROOT, env=env)
        elapsed = time.monotonic() - start
        print(f"\n{args.examples} examples per endpoint: exit {code} in {elapsed:.0f} s")
        print("| endpoint | database | cases | statuses |\n|---|---|---|---|")
        lines = report.read_text().splitlines() if report.exists() else []
        for line in lines:
            row = json.loads(line)
            spread = ", ".join(f"{k}: {v}" for k, v in row["statuses"].items())
            print(f"| `{row['endpoint']}` | {row['database']} | {row['cases']} | {spread} |")
    return code


if __name__ == "__main__":
    sys.exit(main())
