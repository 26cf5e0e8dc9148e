"""A real CoreDNS for the tests, built from `testing/peers/coredns` (`peers.COREDNS_VERSION`).

The dnsupdater writes Corefiles for a CoreDNS that runs in a cluster: server blocks on `:53`,
the `kubernetes` plugin configured in-cluster, upstreams from `/etc/resolv.conf`, `reload` at
its default 30 s (+-15 s). `localize` changes exactly those, and nothing else, so the text the
product generated loads here on loopback:

- every server block's `:53` becomes the test's port, with `bind 127.0.0.1` added;
- each `kubernetes` directive gets `kubeconfig PATH` (the tests' real kube-apiserver), the
  only option an out-of-cluster CoreDNS needs;
- `/etc/resolv.conf` becomes a resolv.conf naming a loopback address where nothing listens,
  so no query ever leaves the machine (the stock `loop` plugin probes through `forward`);
- a bare `reload` gets `2s 1s` (its minimum), so a test waits seconds, not up to 45.

`project(directory, data)` lays a ConfigMap's data out the way the kubelet does for a
ConfigMap volume (files behind a `..data` symlink swapped atomically), so the `hosts` and
`reload` plugins see an update as they would in a pod. `running(...)` starts CoreDNS on such a
directory, waits until it answers, and on exit stops it (SIGTERM, then SIGKILL) and removes
every file; the end of its log is kept in `log` for failure messages.

Must not: listen beyond 127.0.0.1, send a query anywhere but loopback, leave a process or a
file behind, or be imported by services.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from tailwire.testing import bind, peers
from tailwire.testing.system import processes

COREFILE = "Corefile"
NOWHERE = "127.0.0.254"
_BLOCK_KEY = re.compile(r"^(?P<keys>\S[^{\n]*?):53(?P<open>\s*\{)[ \t]*$", re.MULTILINE)
_KUBERNETES = re.compile(
    r"^(?P<indent>[ \t]*)kubernetes(?P<args>[^{\n]*?)(?P<open>[ \t]*\{)?[ \t]*$", re.MULTILINE
)
_BARE_RELOAD = re.compile(r"^(?P<indent>[ \t]*)reload[ \t]*$", re.MULTILINE)


class CoreDNSError(RuntimeError):
    """CoreDNS exited or did not answer in time; carries the end of its log."""


def localize(corefile: str, *, port: int, kubeconfig: Path, resolv_conf: Path) -> str:
    """`corefile` as CoreDNS on loopback port `port` runs it (see the module docstring)."""
    text = _BLOCK_KEY.sub(lambda m: f"{m['keys']}:{port}{m['open']}\n    bind 127.0.0.1", corefile)

    def kubernetes(match: re.Match[str]) -> str:
        indent, args = match["indent"], match["args"].rstrip()
        option = f"{indent}    kubeconfig {kubeconfig}"
        if match["open"]:
            return f"{indent}kubernetes{args} {{\n{option}"
        return f"{indent}kubernetes{args} {{\n{option}\n{indent}}}"

    text = _KUBERNETES.sub(kubernetes, text)
    text = text.replace("/etc/resolv.conf", str(resolv_conf))
    return _BARE_RELOAD.sub(lambda m: f"{m['indent']}reload 2s 1s", text)


def project(directory: Path, data: Mapping[str, str]) -> None:
    """Write `data` into `directory` as the kubelet updates a ConfigMap volume: a new
    timestamped folder, `..data` pointing at it swapped by rename, one symlink per key."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir()
    for key, value in data.items():
        (stamp / key).write_text(value)
    link = directory / "..data_tmp"
    link.symlink_to(stamp.name)
    previous = (directory / "..data").resolve() if (directory / "..data").exists() else None
    link.rename(directory / "..data")
    for key in data:
        entry = directory / key
        if not entry.is_symlink():
            entry.symlink_to(Path("..data") / key)
    for entry in directory.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in data:
            entry.unlink()  # a key removed from the ConfigMap
    if previous is not None and previous != stamp:
        shutil.rmtree(previous, ignore_errors=True)


class CoreDNS:
    """One CoreDNS process reading `<directory>/Corefile`. `start()`, then `close()`."""

    def __init__(self, *, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.log_path = directory.parent / "coredns.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.log = ""

    def start(self, *, probe: str, within: float = 20.0) -> CoreDNS:
        """Start CoreDNS; return once it answers `probe` (any answer: it is serving)."""
        binary = peers.binary("coredns")
        with self.log_path.open("ab") as out:
            self._process = subprocess.Popen(
                [binary, "-conf", str(self.directory / COREFILE)],
                cwd=self.directory.parent,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                preexec_fn=processes.die_with_parent,
            )
        deadline = time.monotonic() + within
        while True:
            if self._process.poll() is not None:
                raise CoreDNSError(
                    f"coredns exited with {self._process.returncode}:\n{self.tail()}"
                )
            try:
                self.query(probe, "A", timeout=0.3)
                return self
            except dns.exception.Timeout:
                pass
            if time.monotonic() >= deadline:
                raise CoreDNSError(f"coredns did not answer within {within} s:\n{self.tail()}")

    def query(self, name: str, rdtype: str = "A", *, timeout: float = 2.0) -> dns.message.Message:
        """One UDP query to this CoreDNS; its answer, whatever the rcode."""
        request = dns.message.make_query(name, dns.rdatatype.from_text(rdtype))
        return dns.query.udp(request, "127.0.0.1", port=self.port, timeout=timeout)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return self.log or "(no log)"

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
            self.log = self.tail()


class Workspace:
    """A temp dir holding the ConfigMap volume (`volume`), a loopback-only resolv.conf and the
    log; `corefile(text)` localizes a Corefile for this port."""

    def __init__(self, *, kubeconfig: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tailwire-coredns-"))
        self.volume = self.root / "volume"
        self.port = bind.free_port()
        self.kubeconfig = kubeconfig
        self.resolv_conf = self.root / "resolv.conf"
        # A loopback address nothing listens on (resolv.conf has no port: 53 it is), so a
        # forwarded query is refused at once and never reaches a resolver that recurses.
        self.resolv_conf.write_text(f"nameserver {NOWHERE}\n")

    def corefile(self, text: str) -> str:
        return localize(
            text, port=self.port, kubeconfig=self.kubeconfig, resolv_conf=self.resolv_conf
        )

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running(
    workspace: Workspace, data: Mapping[str, str], *, probe: str, within: float = 20.0
) -> Iterator[CoreDNS]:
    """CoreDNS serving `data` (a ConfigMap's, its Corefile localized by the caller) projected
    into `workspace.volume`; stopped on exit."""
    project(workspace.volume, data)
    server = CoreDNS(directory=workspace.volume, port=workspace.port)
    try:
        yield server.start(probe=probe, within=within)
    finally:
        server.close()
