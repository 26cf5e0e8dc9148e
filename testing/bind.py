"""A real BIND 9 (`named`) on a free loopback port with a TSIG key and dynamic zones.

For the dnsupdater's tests and benchmark: `running(...)` writes a named.conf, zone files and
the key into a temporary directory, starts `named` in the foreground as a child process,
waits until it answers the zones' SOA over UDP, and on exit stops it and removes every file.
Updates (RFC 2136) and zone transfers are allowed for the key only.

Must not: listen anywhere but 127.0.0.1, read or write /etc/bind, leave a process or a file
behind, or be imported by services.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

NAMED = "/usr/sbin/named"
KEY_NAME = "tailwire-test"
KEY_ALGORITHM = "hmac-sha256"


class BindUnavailable(RuntimeError):
    """`named` is not installed here; tests skip with this reason."""


def find_named() -> str:
    """The `named` binary (Debian package bind9), or BindUnavailable with the reason."""
    for candidate in (NAMED, shutil.which("named")):
        if candidate and Path(candidate).exists():
            return candidate
    raise BindUnavailable("named not found: install the Debian package bind9 (make test does)")


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (DNS needs both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


@dataclasses.dataclass(frozen=True, kw_only=True)
class BindServer:
    """A running named: where it listens and the TSIG key that may update its zones."""

    host: str
    port: int
    zones: tuple[str, ...]
    key_name: str
    key_algorithm: str
    key_secret: str  # base64, as named.conf and dnspython's keyring take it
    directory: Path
    process: subprocess.Popen[bytes]

    def query(self, name: str, rdtype: str = "A") -> list[str]:
        """The answer's values for `name`/`rdtype` (empty for NXDOMAIN or no data)."""
        request = dns.message.make_query(name, dns.rdatatype.from_text(rdtype))
        response = dns.query.udp(request, self.host, port=self.port, timeout=2.0)
        values: list[str] = []
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.from_text(rdtype):
                values.extend(rdata.to_text() for rdata in rrset)
        return sorted(values)

    def log_text(self) -> str:
        path = self.directory / "named.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _zone_file(zone: str) -> str:
    return (
        "$TTL 300\n"
        f"@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n"
        f"@ IN NS ns1.{zone}.\n"
        "ns1 IN A 127.0.0.1\n"
    )


def _named_conf(*, directory: Path, port: int, zones: Sequence[str], secret: str) -> str:
    zone_blocks = "".join(
        f'zone "{zone}" {{\n'
        "  type primary;\n"
        f'  file "{zone}.db";\n'
        f"  allow-update {{ key {KEY_NAME}; }};\n"
        f"  allow-transfer {{ key {KEY_NAME}; }};\n"
        "};\n"
        for zone in zones
    )
    return (
        f'key "{KEY_NAME}" {{ algorithm {KEY_ALGORITHM}; secret "{secret}"; }};\n'
        "controls { };\n"
        "options {\n"
        f'  directory "{directory}";\n'
        f'  pid-file "{directory}/named.pid";\n'
        f'  session-keyfile "{directory}/session.key";\n'
        f'  managed-keys-directory "{directory}";\n'
        f"  listen-on port {port} {{ 127.0.0.1; }};\n"
        "  listen-on-v6 { none; };\n"
        "  recursion no;\n"
        "  dnssec-validation no;\n"
        "  notify no;\n"
        "};\n"
        "logging {\n"
        f'  channel main {{ file "{directory}/named.log"; severity info; print-time yes; }};\n'
        "  category default { main; };\n"
        "  category update { main; };\n"
        "};\n" + zone_blocks
    )


def _wait_ready(server: BindServer, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"named exited with {server.process.returncode}:\n{server.log_text()}"
            )
        try:
            request = dns.message.make_query(server.zones[0], dns.rdatatype.SOA)
            response = dns.query.udp(request, server.host, port=server.port, timeout=0.2)
            if response.rcode() == dns.rcode.NOERROR and response.answer:
                return
        except (OSError, dns.exception.DNSException) as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"named did not answer within {timeout} s ({last!r}):\n{server.log_text()}")


@contextlib.contextmanager
def running(
    *, zones: Sequence[str] = ("example.test",), startup_timeout: float = 15.0
) -> Iterator[BindServer]:
    """Start named for `zones` (dynamic, TSIG-protected); stop it and remove its files."""
    binary = find_named()
    zones = tuple(zone.rstrip(".") for zone in zones)
    directory = Path(tempfile.mkdtemp(prefix="tailwire-bind-"))
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    port = free_port()
    try:
        for zone in zones:
            (directory / f"{zone}.db").write_text(_zone_file(zone))
        conf = directory / "named.conf"
        conf.write_text(_named_conf(directory=directory, port=port, zones=zones, secret=secret))
        conf.chmod(0o600)  # it holds the key
        process = subprocess.Popen(
            [binary, "-f", "-n", "1", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        server = BindServer(
            host="127.0.0.1",
            port=port,
            zones=zones,
            key_name=KEY_NAME,
            key_algorithm=KEY_ALGORITHM,
            key_secret=secret,
            directory=directory,
            process=process,
        )
        try:
            _wait_ready(server, timeout=startup_timeout)
            yield server
        finally:
            _stop(process)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stderr is not None:
        process.stderr.close()
