"""RFC 2136 dynamic updates with TSIG, to an authoritative server (BIND 9, Knot, PowerDNS).

`Rfc2136Backend.read` transfers the zone (AXFR, signed with the key) and returns its A, AAAA
and TXT records; `apply` sends signed UPDATEs holding exactly the difference (deletes of the
removed rdata first, then adds): one when it fits in a DNS message, else several (`batches`),
each holding whole names, since a message over 64 KiB cannot be sent at all and a change that
never goes out would freeze the zone for every team. dnspython's and the socket layer's
errors are converted to the project's at this boundary. The key's secret is held in the
keyring only; it must never be logged or put into an error message.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Literal

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.xfr
import dns.zone

from tailwire.services.dnsupdater.domain import records
from tailwire.shared import errors
from tailwire.shared.events import dns as dns_events

NAME = "rfc2136"
# What one UPDATE may hold, estimated (`estimated_size`): TCP's 65535 bytes less room for the
# header, the zone section and the TSIG record.
MESSAGE_BUDGET = 60_000
_READ_TYPES: dict[str, Literal["A", "AAAA", "TXT"]] = {"A": "A", "AAAA": "AAAA", "TXT": "TXT"}
_AUTH_RCODES = {dns.rcode.NOTAUTH, dns.rcode.REFUSED, dns.rcode.BADSIG, dns.rcode.BADKEY}


class Rfc2136Backend:
    """One authoritative server reached with one TSIG key."""

    name = NAME
    owner_markers = True  # a shared zone: tailwire owns only the names it marked
    wildcards = True

    def __init__(
        self,
        *,
        server: str,
        port: int,
        key_name: str,
        key_secret: str,
        key_algorithm: str = "hmac-sha256",
        timeout: float = 5.0,
    ) -> None:
        self.server = server
        self.port = port
        self.timeout = timeout
        self._key_name = dns.name.from_text(key_name)
        self._algorithm = dns.name.from_text(key_algorithm)
        try:
            self._keyring = dns.tsigkeyring.from_text({key_name: key_secret})
        except (ValueError, dns.exception.DNSException) as exc:
            raise errors.ConfigurationError(
                f"tsig_secret: not a base64 TSIG secret for key {key_name!r} ({type(exc).__name__})"
            ) from None
        self._address: str | None = None

    def __repr__(self) -> str:
        return f"Rfc2136Backend(server={self.server!r}, port={self.port}, key={self._key_name})"

    async def _where(self) -> str:
        if self._address is None:
            try:
                ipaddress.ip_address(self.server)
                self._address = self.server
            except ValueError:
                loop = asyncio.get_running_loop()
                try:
                    infos = await loop.getaddrinfo(self.server, self.port, type=socket.SOCK_STREAM)
                except OSError as exc:
                    raise errors.TransientBackendError(
                        f"rfc2136: cannot resolve server {self.server!r}: {exc}"
                    ) from exc
                self._address = str(infos[0][4][0])
        return self._address

    async def read(self, zone: str) -> frozenset[dns_events.Record]:
        """Every A, AAAA and TXT record of the zone, by zone transfer."""
        origin = dns.name.from_text(zone)
        holder = dns.zone.Zone(origin)
        query, _ = dns.xfr.make_query(
            holder,
            serial=None,
            keyring=self._keyring,
            keyname=self._key_name,
            keyalgorithm=self._algorithm,
        )
        try:
            await dns.asyncquery.inbound_xfr(
                await self._where(), holder, query=query, port=self.port, lifetime=self.timeout
            )
        except dns.xfr.TransferError as exc:
            raise self._refused(zone=zone, what="zone transfer", rcode=exc.rcode) from None
        except (dns.tsig.PeerError, dns.tsig.BadSignature) as exc:
            raise errors.AuthenticationFailed(
                f"rfc2136 {zone}: zone transfer refused the TSIG key ({type(exc).__name__})"
            ) from None
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            raise errors.TransientBackendError(
                f"rfc2136 {zone}: zone transfer from {self.server}:{self.port} failed: {exc!r}"
            ) from exc
        found: set[dns_events.Record] = set()
        for name, ttl, rdata in holder.iterate_rdatas():
            kind = _READ_TYPES.get(dns.rdatatype.to_text(rdata.rdtype))
            if kind is None:
                continue
            fqdn = name.derelativize(origin).to_text(omit_final_dot=True).lower()
            found.add(dns_events.Record(name=fqdn, type=kind, value=rdata.to_text(), ttl=ttl))
        return frozenset(found)

    async def apply(
        self,
        zone: str,
        *,
        change: records.Change,
        desired: frozenset[dns_events.Record],
    ) -> None:
        """Signed UPDATEs, one per batch: delete the removed rdata, then add the new records."""
        del desired  # the difference is enough here
        for batch in batches(change):
            await self._update(zone, batch)

    async def _update(self, zone: str, change: records.Change) -> None:
        update = dns.update.UpdateMessage(
            zone,
            keyring=self._keyring,
            keyname=self._key_name,
            keyalgorithm=self._algorithm,
        )
        for record in change.removed:
            update.delete(dns.name.from_text(record.name), record.type, record.value)
        for record in change.added:
            update.add(dns.name.from_text(record.name), record.ttl, record.type, record.value)
        try:
            response = await dns.asyncquery.tcp(
                update, await self._where(), port=self.port, timeout=self.timeout
            )
        except (dns.tsig.PeerError, dns.tsig.BadSignature) as exc:
            raise errors.AuthenticationFailed(
                f"rfc2136 {zone}: update refused the TSIG key ({type(exc).__name__})"
            ) from None
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            raise errors.TransientBackendError(
                f"rfc2136 {zone}: update to {self.server}:{self.port} failed: {exc!r}"
            ) from exc
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise self._refused(zone=zone, what="update", rcode=rcode)

    def _refused(self, *, zone: str, what: str, rcode: dns.rcode.Rcode) -> errors.BackendError:
        text = dns.rcode.to_text(rcode)
        message = f"rfc2136 {zone}: {what} answered {text} by {self.server}:{self.port}"
        if rcode in _AUTH_RCODES:
            return errors.AuthenticationFailed(message + " (key, zone or policy refused)")
        if rcode == dns.rcode.SERVFAIL:
            return errors.TransientBackendError(message)
        return errors.PermanentBackendError(message)


def _record_size(record: dns_events.Record) -> int:
    """An upper bound of the record's wire size in an UPDATE (name uncompressed)."""
    name = len(record.name) + 2
    if record.type == "A":
        rdata = 4
    elif record.type == "AAAA":
        rdata = 16
    elif record.type == "CNAME":
        rdata = len(record.value) + 2
    else:  # TXT: each quoted string carries a length byte; the quotes do not travel
        rdata = len(record.value) + 1 + record.value.count('" "')
    return name + 10 + rdata


def estimated_size(change: records.Change) -> int:
    return sum(_record_size(r) for r in (*change.removed, *change.added))


def batches(change: records.Change) -> list[records.Change]:
    """The change in batches under MESSAGE_BUDGET, each name's deletes and adds together (so a
    name is never left half changed between two messages); in name order."""
    by_name: dict[str, tuple[list[dns_events.Record], list[dns_events.Record]]] = {}
    for record in change.removed:
        by_name.setdefault(record.name, ([], []))[0].append(record)
    for record in change.added:
        by_name.setdefault(record.name, ([], []))[1].append(record)
    out: list[records.Change] = []
    removed: list[dns_events.Record] = []
    added: list[dns_events.Record] = []
    size = 0
    for name in sorted(by_name):
        gone, new = by_name[name]
        cost = sum(_record_size(r) for r in (*gone, *new))
        if size and size + cost > MESSAGE_BUDGET:
            out.append(records.Change(added=tuple(added), removed=tuple(removed)))
            removed, added, size = [], [], 0
        removed.extend(gone)
        added.extend(new)
        size += cost
    if removed or added:
        out.append(records.Change(added=tuple(added), removed=tuple(removed)))
    return out
