"""An SMTP sink in its own process: records each message's arrival time, Message-ID and recipients.

Run as ``python -m bench.sink PORT LOGFILE [--no-pipelining] [--one-thread]``. Each accepted
message appends one line ``<time.time()> <Message-ID> <rcpt>[,<rcpt>...]`` to LOGFILE (one write
per message, O_APPEND), so the measuring process reads arrivals without sharing a GIL with the
server. Parsing is a regex on the raw header bytes: the sink must cost as little as possible,
since it shares the 2 cores.

It serves each connection in a process of its own, forked on accept, as Postfix's smtpd and Exim
do: two workers sending at once are answered side by side, not by one event loop in turn.
``--one-thread`` serves every connection from one aiosmtpd event loop instead (the sink before
2026-12-06). It announces PIPELINING (RFC 2920) as production relays (Postfix, Exim, SES) do,
unless started with ``--no-pipelining``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from tests.harness import ehlo_with_pipelining

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
ACCEPT_TIMEOUT = 0.5  # seconds: how often the accepting process looks for a stop and reaps children


class Recorder:
    def __init__(self, path: str, *, pipelining: bool = True) -> None:
        self.out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the life of the process
        self.pipelining = pipelining

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:  # noqa: N802 - aiosmtpd hook
        session.host_name = hostname
        return ehlo_with_pipelining(responses) if self.pipelining else responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        at = time.time()
        head = envelope.content[:4096] if isinstance(envelope.content, bytes) else envelope.content.encode()[:4096]
        found = MESSAGE_ID.search(head)
        message_id = found.group(1).decode(errors="replace") if found else "-"
        self.out.write(f"{at:.6f} {message_id} {','.join(envelope.rcpt_tos)}\n")
        return "250 Message accepted"


class _OneConnection(SMTP):
    """aiosmtpd's protocol for the one connection of a forked child; resolves ``closed`` when it ends."""

    def __init__(self, *args: Any, closed: asyncio.Future, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self._closed.done():
            self._closed.set_result(None)


def _serve_connection(conn: socket.socket, path: str, pipelining: bool) -> None:
    """In a forked child: serve ``conn`` until the client hangs up."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    loop = asyncio.new_event_loop()
    recorder = Recorder(path, pipelining=pipelining)
    closed = loop.create_future()
    factory = lambda: _OneConnection(recorder, hostname="127.0.0.1", loop=loop, closed=closed)  # noqa: E731
    loop.run_until_complete(loop.connect_accepted_socket(factory, conn))
    loop.run_until_complete(closed)


def _stop_on_signal() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the sink stops when the bench stops it."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def serve_forking(port: int, path: str, pipelining: bool) -> None:
    """Accept on 127.0.0.1:``port``; each connection in a child; reap them; stop on SIGTERM (children too)."""
    stop = _stop_on_signal()
    listener = socket.create_server(("127.0.0.1", port), backlog=128)
    listener.settimeout(ACCEPT_TIMEOUT)
    children: set[int] = set()
    print(f"sink ready on 127.0.0.1:{port}", flush=True)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            conn = None
        if conn is not None:
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio's own servers do
            pid = os.fork()
            if pid == 0:
                listener.close()
                try:
                    _serve_connection(conn, path, pipelining)
                finally:
                    os._exit(0)
            conn.close()
            children.add(pid)
        for pid in list(children):  # reaped, so their CPU shows in this process's cutime
            if os.waitpid(pid, os.WNOHANG)[0]:
                children.discard(pid)
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)


def serve_one_thread(port: int, path: str, pipelining: bool) -> None:
    """Every connection on one aiosmtpd event loop (a thread of this process)."""
    controller = Controller(Recorder(path, pipelining=pipelining), hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    stop = _stop_on_signal()
    print(f"sink ready on 127.0.0.1:{port}", flush=True)
    stop.wait()
    controller.stop()


def main() -> None:
    port, path, flags = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    serve = serve_one_thread if "--one-thread" in flags else serve_forking
    serve(port, path, "--no-pipelining" not in flags)


if __name__ == "__main__":
    main()
