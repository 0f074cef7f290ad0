"""What the benchmarks share: a throwaway database (SQLite file or PostgreSQL database) and the
line that says on what machine and when a run was made."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
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


def autovacuum_on(pg_admin: str) -> bool:
    """Whether the PostgreSQL server of ``pg_admin`` runs autovacuum (as a deployment does)."""
    engine = sa.create_engine(pg_admin)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SHOW autovacuum")).scalar_one() == "on"
    finally:
        engine.dispose()


@contextmanager
def deployed_postgres(pg_admin: str, port: int = 5499) -> Iterator[str]:
    """The admin URL of a PostgreSQL server run as a deployment runs it (autovacuum on).

    ``pg_admin``'s server when its autovacuum is on; otherwise a private server started for the
    run (``initdb`` into a temporary folder, PostgreSQL's defaults, as the ``postgres`` user
    when run as root) and stopped afterwards. A server with autovacuum off keeps the plans made
    on the first seconds' empty tables and piles up dead rows: its figures are no deployment's.
    """
    if autovacuum_on(pg_admin):
        yield pg_admin
        return
    bindir = _pg_bindir()
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    data = folder / "data"
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(folder, "postgres")
    run = partial(subprocess.run, check=True, stdout=subprocess.DEVNULL)
    run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-w"]
    run([*pg_ctl, "-o", options, "-l", str(folder / "server.log"), "start"])
    print(
        f"PostgreSQL at {pg_admin.rsplit('@', 1)[-1]} has autovacuum off: a private server "
        f"(initdb, defaults, autovacuum on) on port {port} for this run"
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        run([*pg_ctl, "-m", "fast", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


def _pg_bindir() -> Path:
    """The folder of the newest installed PostgreSQL's ``initdb`` and ``pg_ctl``."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not candidates:
        raise SystemExit("no initdb found: install PostgreSQL's server package")
    return candidates[-1].parent


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
