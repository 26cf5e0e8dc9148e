"""Finding network namespaces and running code inside them.

A namespace is named (`/run/netns/<name>`, tests and `tailwire dev`) or found by pod UID:
the first process under `<proc_root>` whose `cgroup` mentions the pod (kubelet's cgroup
paths carry `pod<uid>`, with `_` for `-` under the systemd driver) lends its `ns/net`; this
needs hostPID. `run_inside` runs a function on a fresh thread that entered the namespace, so
the agent's own threads never change namespace. Nothing here creates or deletes namespaces.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tailwire.shared import errors

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


class NamespaceNotFound(errors.DatapathError):
    """The pod's or gateway's network namespace does not exist (yet, or any more)."""


def named_path(name: str, *, netns_dir: str = NETNS_DIR) -> str:
    if "/" in name or name in ("", ".", ".."):
        raise NamespaceNotFound(f"netns {name!r} is not a valid namespace name")
    path = os.path.join(netns_dir, name)
    if not os.path.exists(path):
        raise NamespaceNotFound(f"netns {name!r} does not exist ({path})")
    return path


def find_pod_netns(pod_uid: str, *, proc_root: str = "/proc") -> str | None:
    """`<proc_root>/<pid>/ns/net` of a process of the pod, or None if none runs."""
    needles = (f"pod{pod_uid}", f"pod{pod_uid.replace('-', '_')}")
    root = Path(proc_root)
    try:
        entries = list(root.iterdir())
    except OSError as exc:
        raise errors.DatapathError(f"cannot list {proc_root}: {exc}") from exc
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            cgroup = (entry / "cgroup").read_text()
        except OSError:  # the process exited, or is not ours to read
            continue
        if any(needle in cgroup for needle in needles):
            netns = entry / "ns" / "net"
            if os.path.exists(netns):
                return str(netns)
    return None


def resolve(
    *,
    netns: str | None,
    pod_uid: str | None,
    proc_root: str = "/proc",
    netns_dir: str = NETNS_DIR,
) -> str:
    """The path of a namespace given by name, else by pod UID; NamespaceNotFound otherwise."""
    if netns:
        return named_path(netns, netns_dir=netns_dir)
    if pod_uid:
        path = find_pod_netns(pod_uid, proc_root=proc_root)
        if path is None:
            raise NamespaceNotFound(f"no process of pod {pod_uid} under {proc_root}")
        return path
    raise NamespaceNotFound("neither a netns name nor a pod UID was given")


def run_inside(path: str, function: Callable[[], T]) -> T:
    """Run `function` on a new thread that entered the namespace at `path`."""
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            failure.append(NamespaceNotFound(f"cannot open netns {path}: {exc.strerror}"))
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                hint = " (needs root: CAP_SYS_ADMIN)" if code == errno.EPERM else ""
                failure.append(
                    errors.DatapathError(f"cannot enter netns {path}: {os.strerror(code)}{hint}")
                )
                return
            result.append(function())
        except BaseException as exc:  # noqa: BLE001 (re-raised on the caller's thread)
            failure.append(exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=target, name="tailwire-netns", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def read_sysctls(path: str, keys: tuple[str, ...]) -> dict[str, str]:
    def read() -> dict[str, str]:
        values = {}
        for key in keys:
            try:
                values[key] = Path("/proc/sys", key).read_text().strip()
            except OSError:
                continue
        return values

    return run_inside(path, read)


def write_sysctl(path: str, key: str, value: str) -> None:
    def write() -> None:
        try:
            Path("/proc/sys", key).write_text(value)
        except OSError as exc:
            raise errors.DatapathError(f"sysctl {key}={value} in {path}: {exc}") from exc

    run_inside(path, write)
