"""An SMTP sink in its own process: records each message's arrival time, Message-ID and recipients.

Run as ``python -m bench.sink PORT LOGFILE``. Each accepted message appends one line
``<time.time()> <Message-ID> <rcpt>[,<rcpt>...]`` to LOGFILE (flushed per message), so the
measuring process reads arrivals without sharing a GIL with the server. Parsing is a regex on the
raw header bytes: the sink must cost as little as possible, since it shares the 2 cores.
It announces PIPELINING (RFC 2920) as production relays (Postfix, Exim, SES) do, unless started
with ``--no-pipelining``.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller

from tests.harness import ehlo_with_pipelining

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


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


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    recorder = Recorder(path, pipelining="--no-pipelining" not in sys.argv[3:])
    controller = Controller(recorder, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"sink ready on 127.0.0.1:{port}", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
