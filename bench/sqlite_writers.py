"""SQLite write transactions from several processes: the writer gate against SQLite's busy handler.

Each process loops for ``--seconds``: a ``write_session`` that inserts one row and then keeps
the transaction open for ``--hold-ms`` of CPU (what a webhook's conversation step does between
its first statement and its commit). Reported: transactions per second and the p50/p99 time
from asking for the transaction to its commit, with the writer gate (``citoyen.db.WriterGate``)
and without it (SQLite's busy handler alone, which sleeps 1, 2, 5, 10 ... 100 ms between polls)::

    .venv/bin/python bench/sqlite_writers.py [--processes 4] [--seconds 5] [--hold-ms 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import sqlalchemy as sa
from common import machine_line


def _writer(
    url: str, gate: bool, seconds: float, hold: float, start_at: float, out: mp.Queue
) -> None:
    from citoyen import db

    if not gate:
        db.writer_gate = lambda _engine: nullcontext()  # type: ignore[assignment]
    engine = db.make_engine(url)
    latencies: list[float] = []
    while time.time() < start_at:
        time.sleep(0.001)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        asked = time.perf_counter()
        with db.write_session(engine) as session:
            session.execute(sa.text("INSERT INTO t (v) VALUES (1)"))
            spin = time.perf_counter() + hold
            while time.perf_counter() < spin:
                pass
        latencies.append(time.perf_counter() - asked)
    engine.dispose()
    out.put(latencies)


def run(gate: bool, args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-writers-"))
    url = f"sqlite:///{folder / 'w.db'}"
    from citoyen import db

    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)"))
    engine.dispose()
    out: mp.Queue = mp.Queue()
    start_at = time.time() + 0.5
    procs = [
        mp.Process(
            target=_writer, args=(url, gate, args.seconds, args.hold_ms / 1000, start_at, out)
        )
        for _ in range(args.processes)
    ]
    for p in procs:
        p.start()
    latencies = sorted(x for _ in procs for x in out.get())
    for p in procs:
        p.join()
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{'gate   ' if gate else 'no gate'}: {len(latencies) / args.seconds:7.1f} tx/s, "
        f"p50 {q[49] * 1000:6.1f} ms, p99 {q[98] * 1000:6.1f} ms, max {latencies[-1] * 1000:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--hold-ms", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(machine_line())
    print(f"{args.processes} processes, {args.hold_ms} ms of CPU inside each transaction")
    for _ in range(args.rounds):
        run(False, args)
        run(True, args)


if __name__ == "__main__":
    main()
