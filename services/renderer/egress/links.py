"""Link addresses of member veths, and fwmark/table pairs of gateways, per node.

A member's slot is derived from its pod UID (a hash into the link range), kept from the
previous plan when it is still free, and moved by deterministic linear probing on a
collision, so existing members never change address when another pod joins. Slot `i` is the
`/31` at `link_cidr_v4 + 2i` (gateway end even, member end odd) and the `/127` at
`link_cidr_v6 + 2i`; slots touching 169.254.1.1 (Calico's gateway address) are never used.
The same scheme, over a smaller range, gives each group on a node a distinct fwmark and table.
Must not: do I/O.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping

from tailwire.shared import errors
from tailwire.shared.events import nodes

CALICO_LINK_ADDRESS = ipaddress.ip_address("169.254.1.1")
# Gateway netns: `ip rule fwmark MARK_BASE+i lookup TABLE_BASE+i`; far from main/local/7717.
GATEWAY_SLOTS = 4096
MARK_BASE = 0x7A10000
TABLE_BASE = 20000


def preferred_slot(key: str, *, size: int) -> int:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % size


def allocate(
    keys: Iterable[str],
    *,
    size: int,
    previous: Mapping[str, int],
    forbidden: frozenset[int] = frozenset(),
) -> dict[str, int]:
    """A distinct slot per key: previous slots first (in key order), then hash + probing."""
    ordered = sorted(set(keys))
    if len(ordered) > size - len(forbidden):
        raise errors.ValidationFailed(
            [
                errors.Problem(
                    field="link range", message=f"{len(ordered)} slots needed, {size} available"
                )
            ]
        )
    taken: set[int] = set(forbidden)
    result: dict[str, int] = {}
    for key in ordered:
        slot = previous.get(key)
        if slot is not None and 0 <= slot < size and slot not in taken:
            result[key] = slot
            taken.add(slot)
    for key in ordered:
        if key in result:
            continue
        slot = preferred_slot(key, size=size)
        while slot in taken:
            slot = (slot + 1) % size
        result[key] = slot
        taken.add(slot)
    return result


class LinkRange:
    """The configured link CIDRs, and conversions between slots and addresses."""

    def __init__(self, *, cidr_v4: str, cidr_v6: str) -> None:
        self.v4 = ipaddress.IPv4Network(cidr_v4)
        self.v6 = ipaddress.IPv6Network(cidr_v6)
        self.size = min(self.v4.num_addresses // 2, self.v6.num_addresses // 2)
        forbidden = set()
        if CALICO_LINK_ADDRESS in self.v4:
            forbidden.add((int(CALICO_LINK_ADDRESS) - int(self.v4.network_address)) // 2)
        self.forbidden = frozenset(forbidden)

    def addresses(self, slot: int) -> nodes.LinkAddresses:
        return _addresses(self.v4, self.v6, slot)

    def slot_of(self, link: nodes.LinkAddresses) -> int | None:
        """The slot a previous plan used, if it lies in this range."""
        return _slot_of(self.v4, link.gateway_v4, self.size)

    def assign(self, uids: Iterable[str], *, previous: Mapping[str, int]) -> dict[str, int]:
        return allocate(uids, size=self.size, previous=previous, forbidden=self.forbidden)


# Addresses are pure functions of (range, slot); rendering 10,000 members again and again
# should not format 40,000 addresses each time.
@functools.lru_cache(maxsize=65536)
def _slot_of(v4: ipaddress.IPv4Network, gateway_v4: str, size: int) -> int | None:
    try:
        address = ipaddress.IPv4Address(gateway_v4.split("/")[0])
    except ValueError:
        return None
    if address not in v4:
        return None
    slot = (int(address) - int(v4.network_address)) // 2
    return slot if slot < size else None


@functools.lru_cache(maxsize=65536)
def _addresses(
    v4: ipaddress.IPv4Network, v6: ipaddress.IPv6Network, slot: int
) -> nodes.LinkAddresses:
    base4 = int(v4.network_address) + 2 * slot
    base6 = int(v6.network_address) + 2 * slot
    return nodes.LinkAddresses(
        gateway_v4=f"{ipaddress.IPv4Address(base4)}/31",
        member_v4=f"{ipaddress.IPv4Address(base4 + 1)}/31",
        gateway_v6=f"{ipaddress.IPv6Address(base6)}/127",
        member_v6=f"{ipaddress.IPv6Address(base6 + 1)}/127",
    )


def gateway_mark_table(slot: int) -> tuple[int, int]:
    return MARK_BASE + slot, TABLE_BASE + slot
