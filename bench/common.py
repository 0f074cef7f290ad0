"""What the benchmarks share: a throwaway database (SQLite file or PostgreSQL database) and the
line that says on what machine and when a run was made."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def machine_line() -> str:
    return (
        f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def postgres_cpu_seconds() -> float | None:
    """CPU seconds (user and system) spent so far by the processes named ``postgres`` on this
    machine (its server and backends; Linux ``/proc``), or None where that cannot be read. Read
    before and after a batch of requests: the server's share of their cost, which an in-process
    run does not see (with nothing else using the server meanwhile)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    ticks = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        if name.startswith("postgres"):
            utime, stime = fields.split()[11:13]
            ticks += int(utime) + int(stime)
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def throwaway_database(kind: str, pg_admin: str, name: str) -> Iterator[tuple[str, Path]]:
    """``(url, folder)``: a new SQLite file, or PostgreSQL database ``name`` created on
    ``pg_admin``'s server; dropped (with the folder) afterwards, whatever happens."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-{kind}-"))
    admin = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'bench.db'}"
    else:
        admin = sa.create_engine(pg_admin, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        url = pg_admin.rsplit("/", 1)[0] + "/" + name
    try:
        yield url, tmp
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def stand_in_for_autovacuum(url: str) -> bool:
    """On a PostgreSQL server whose autovacuum is off, do its work now: ``VACUUM (ANALYZE)`` of
    the bench's database; called between load runs. Returns whether it ran.

    A production server runs autovacuum (PostgreSQL's default, and docs/deploy.md asks for it):
    it analyzes a table once a tenth of it changed, and the new statistics make every cached
    plan of a statement on that table be planned again. With it off, the plans the workers made
    in the first seconds, on empty tables without statistics, are kept for the whole run, and
    dead row versions pile up: the webhook's throughput fell by 30 % over six rounds of
    10 seconds (docs/performance.md, "Seventh pass"), which no deployment would see. The line
    this prints says it was done, so no figure is read as coming from a server left alone.
    """
    if not url.startswith("postgresql"):
        return False
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if conn.execute(sa.text("SHOW autovacuum")).scalar_one() == "on":
                return False
            conn.execute(sa.text("VACUUM (ANALYZE)"))
    finally:
        engine.dispose()
    return True


AUTOVACUUM_STAND_IN = (
    "PostgreSQL's autovacuum is off on this server: VACUUM (ANALYZE) of the bench database "
    "before each measured run, in its place (--no-autovacuum-stand-in: leave it alone)"
)


class AutovacuumStandIn:
    """Called before each measured run: :func:`stand_in_for_autovacuum` unless the option
    turned it off, and :data:`AUTOVACUUM_STAND_IN` printed the first time it ran."""

    def __init__(self, url: str, enabled: bool) -> None:
        self.url, self.enabled, self.told = url, enabled, False

    def __call__(self) -> None:
        if self.enabled and stand_in_for_autovacuum(self.url) and not self.told:
            print(AUTOVACUUM_STAND_IN)
            self.told = True


def add_autovacuum_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-autovacuum-stand-in",
        dest="autovacuum_stand_in",
        action="store_false",
        help="on a PostgreSQL server with autovacuum off, do not vacuum between runs",
    )


def worker_rss_mb(master_pid: int) -> list[float]:
    """Resident memory (VmRSS, MB) of each child process of ``master_pid`` (gunicorn's workers),
    read from /proc: what the kernel counts against the worker, imports included."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    sizes = []
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def print_worker_rss(master_pid: int) -> None:
    sizes = worker_rss_mb(master_pid)
    listed = ", ".join(f"{s:.1f}" for s in sizes)
    print(f"worker RSS MB: {listed}; max {max(sizes):.1f} (target < 150)")


# Response header a bench app sets with the time spent inside the app (ms).
SERVER_TIME = "X-Bench-Server-Ms"


class ServerTimer:
    """WSGI middleware: the time inside the app, sent back in the ``SERVER_TIME`` header (the
    body is built before the headers go out) and, with ``keep``, kept in ``samples`` (in process
    only: a gunicorn worker keeping them would grow, and its RSS is measured)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], *, keep: bool = False) -> None:
        self.app = app
        self.keep = keep
        self.samples: list[tuple[str, float, float]] = []  # (path, wall ms, CPU ms)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        started = time.perf_counter()
        cpu = time.thread_time()
        captured: list[Any] = []

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured[:] = [status, headers, exc_info]

        result = self.app(environ, keep)
        try:
            body = list(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        ms = (time.perf_counter() - started) * 1000
        cpu_ms = (time.thread_time() - cpu) * 1000
        if self.keep:
            self.samples.append((environ.get("PATH_INFO", ""), ms, cpu_ms))
        status, headers, exc_info = captured
        start_response(status, [*headers, (SERVER_TIME, f"{ms:.3f}")], exc_info)
        return body
