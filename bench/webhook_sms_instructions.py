"""Instructions per SMS webhook message and per baseline request, counted by valgrind.

On a shared virtual machine the CPU time of the same run moves by 30 % from one minute to the
next (the host lends the cores to others), which hides a change of a few percent. ``valgrind
--tool=callgrind`` counts the instructions the process executes instead: within about 1 % from
one run to the next for the same code and inputs, whatever else the machine does (the hash seed
is fixed, so string hashing lays dicts and sets out the same way each time). This runs ``webhook_sms_profile.py`` (in process:
Flask test client, the real app and the baseline route) under callgrind, once with ``--small``
and once with ``--large`` messages for each route; the difference divided by the difference in
messages is the cost of one message, without the start-up. The ratio of the two says how a change
moves the server-side share of the throughput target (>= 0.5x the baseline), not whether the
target is met: only user-space instructions are counted, not the kernel's time (the webhook
writes more to SQLite and makes more system calls) nor memory stalls, so it reads higher than
the ratio of CPU times (``webhook_sms_profile.py``), and gunicorn's HTTP parsing, the same for
both routes, is not in it.

SQLite only: on PostgreSQL the server's own work runs in another process and would not be
counted. ``--src`` points at another checkout's ``src`` (say, a worktree of the commit before a
change) so that both are counted by the same script::

    .venv/bin/python bench/webhook_sms_instructions.py [--src ../before/src] [--small 100]
        [--large 300] [--jobs 2]

Each run takes a few minutes (callgrind is some 40 times slower than the plain interpreter).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import machine_line

HERE = Path(__file__).resolve().parent


def instructions(route: str, messages: int, src: str | None, out_dir: Path) -> int:
    """Instructions executed by one in-process run sending ``messages`` to ``route``."""
    out = out_dir / f"callgrind.{route}.{messages}.out"
    # A fixed hash seed: string hashing, hence dict and set layouts, the same in every run.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(HERE / "webhook_sms_profile.py"),
            "--db",
            "sqlite",
            "--messages",
            str(messages),
            "--rounds",
            "1",
            "--warmup",
            "20",
            "--only",
            route,
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    match = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"no totals in {out}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", help="the src directory of the code to count (default: this one)")
    parser.add_argument("--small", type=int, default=100, help="messages in the short run")
    parser.add_argument("--large", type=int, default=300, help="messages in the long run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one per core)")
    args = parser.parse_args()
    for count in (args.small, args.large):
        if count % 10:
            parser.error("message counts must be whole conversations (multiples of 10)")
    print(machine_line())
    print(f"code: {args.src or HERE.parent / 'src'}")
    runs = [(route, n) for route in ("baseline", "webhook") for n in (args.small, args.large)]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        done = dict(
            zip(
                runs,
                pool.map(lambda run: instructions(run[0], run[1], args.src, Path(tmp)), runs),
                strict=True,
            )
        )
    per: dict[str, float] = {}
    for route in ("baseline", "webhook"):
        per[route] = (done[route, args.large] - done[route, args.small]) / (args.large - args.small)
        print(f"{route:8}: {per[route] / 1e6:.3f} M instructions per message")
    print(f"ratio baseline/webhook: {per['baseline'] / per['webhook']:.3f}")


if __name__ == "__main__":
    main()
