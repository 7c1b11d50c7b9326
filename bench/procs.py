"""Processes the benchmark owns: SMTP sink, workers, PostgreSQL, gunicorn. All stopped by PID."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import ROOT, free_port, stop_process, wait_until

BIN = Path(sys.executable).parent


def _popen(args: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@dataclass
class Arrival:
    at: float
    message_id: str
    rcpts: list[str]


@dataclass
class Sink:
    """The SMTP sink process (bench/sink.py) and the log it appends arrivals to."""

    directory: Path
    port: int = field(default_factory=free_port)
    mode: str = "per-connection"  # or "one-thread": bench/sink.py
    proc: subprocess.Popen | None = None
    offset: int = 0

    @property
    def path(self) -> Path:
        return self.directory / "arrivals.log"

    def start(self, env: dict[str, str]) -> Sink:
        self.path.touch()
        args = [sys.executable, "-m", "bench.sink", str(self.port), str(self.path)]
        args += ["--one-thread"] if self.mode == "one-thread" else []
        self.proc = _popen(args, env=env, log=self.directory / "sink.out")
        wait_until(self._listening, timeout=20, what="SMTP sink to listen")
        return self

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError((self.directory / "sink.out").read_text()[-2000:])
        return "ready" in (self.directory / "sink.out").read_text()

    def mark(self) -> None:
        """Start a scenario: later reads only see arrivals after this point."""
        self.offset = self.path.stat().st_size

    def arrivals(self) -> list[Arrival]:
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        out = []
        for line in data.decode().splitlines():
            parts = line.split(" ")
            if len(parts) == 3:
                out.append(Arrival(float(parts[0]), parts[1], parts[2].split(",")))
        return out

    def wait_for(self, n: int, *, timeout: float, idle: float = 20.0, not_before: float = 0.0) -> list[Arrival]:
        """Wait until ``n`` messages arrived, or ``timeout``, or nothing new came for ``idle`` s
        after ``not_before`` (a time.time(), e.g. the last due time)."""
        deadline = time.monotonic() + timeout
        last_count, last_change = -1, time.monotonic()
        while True:
            got = self.arrivals()
            if len(got) != last_count or time.time() < not_before:
                last_count, last_change = len(got), time.monotonic()
            if len(got) >= n or time.monotonic() > deadline or time.monotonic() - last_change > idle:
                return got
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def descendants(pid: int) -> list[int]:
    """The process and all its children, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far by ``pids``, their live descendants and the children they reaped."""
    ticks = 0
    for pid in pids:
        for each in descendants(pid):
            try:
                with open(f"/proc/{each}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    times = os.times()
    return times.user + times.system


def peak_rss_mb(pid: int) -> float:
    """Largest VmHWM (peak resident set) among the process and its children, in MB."""
    peak = 0
    for each in descendants(pid):
        try:
            with open(f"/proc/{each}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def start_mail_worker(
    env: dict[str, str], *, name: str, log: Path, worker_class: str | None = None
) -> subprocess.Popen:
    """``manage.py rqworker high default low --with-scheduler`` (reservemail's own worker)."""
    args = [sys.executable, "manage.py", "rqworker", "high", "default", "low", "--with-scheduler", "--name", name]
    if worker_class:
        args += ["--worker-class", worker_class]
    return _popen(args, env=env, log=log)


def start_plain_worker(env: dict[str, str], *, name: str, log: Path, redis_url: str) -> subprocess.Popen:
    """The stock ``rq worker plain --with-scheduler`` (forks a work-horse per job)."""
    args = [str(BIN / "rq"), "worker", "plain", "--with-scheduler", "--url", redis_url, "--name", name]
    return _popen(args, env={**env, "PYTHONPATH": str(ROOT)}, log=log)


def wait_registered(redis_client, proc: subprocess.Popen, name: str, log: Path) -> None:  # noqa: ANN001
    wait_until(
        lambda: redis_client.exists(f"rq:worker:{name}") or proc.poll() is not None,
        timeout=60,
        what=f"worker {name} to register",
    )
    if proc.poll() is not None:
        raise RuntimeError(f"worker {name} exited: {log.read_text()[-3000:]}")


@dataclass
class Postgres:
    """A throw-away PostgreSQL cluster on a free loopback port (as user postgres when run as root)."""

    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("initdb") and shutil.which("postgres"))

    def _as_owner(self, args: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return args

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/bench"

    def start(self) -> Postgres:
        data = self.directory / "pgdata"
        data.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
            shutil.chown(data, "postgres")
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        initdb = [shutil.which("initdb") or "initdb", "-D", str(data), "-U", "postgres", "-A", "trust"]
        subprocess.run(self._as_owner(initdb), check=True, **quiet)  # type: ignore[call-overload]
        args = [shutil.which("postgres") or "postgres", "-D", str(data), "-p", str(self.port)]
        args += ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.directory}"]
        args += ["-c", "fsync=on", "-c", "synchronous_commit=on"]
        self.proc = subprocess.Popen(self._as_owner(args), start_new_session=True, **quiet)  # type: ignore[call-overload]
        wait_until(self._ready, timeout=30, what="postgres to accept connections")
        return self

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname='bench'").fetchone():
                    conn.execute("CREATE DATABASE bench")
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=20)


def start_gunicorn(env: dict[str, str], *, port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    args = [str(BIN / "gunicorn"), "reservemail.wsgi", "--bind", f"127.0.0.1:{port}"]
    args += ["--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread"]
    return _popen(args, env=env, log=log)
