"""The keyminter's pure decisions: reuse, renewal point, the owner marker, owned devices."""

from __future__ import annotations

import datetime
import re

from tailwire.services.keyminter import domain

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def _stored(**changes: object) -> domain.StoredKey:
    fields: dict[str, object] = {
        "key_id": "k1",
        "tailnet": "-",
        "tags": ("tag:k8s",),
        "issued_at": T0,
        "expires_at": T0 + 90 * DAY,
    }
    fields.update(changes)
    return domain.StoredKey(**fields)  # type: ignore[arg-type]


def test_key_is_reused_until_eighty_percent_of_its_lifetime() -> None:
    stored = _stored()
    assert stored.renew_at(fraction=0.8) == T0 + 72 * DAY
    common = {"tailnet": "-", "tags": ("tag:k8s",), "fraction": 0.8}
    assert domain.is_reusable(stored, now=T0 + 71 * DAY, **common)  # type: ignore[arg-type]
    assert not domain.is_reusable(stored, now=T0 + 72 * DAY, **common)  # type: ignore[arg-type]


def test_key_is_not_reused_for_other_tags_another_tailnet_or_without_data() -> None:
    now = T0 + DAY
    assert domain.is_reusable(
        _stored(tags=("tag:b", "tag:a")),
        tailnet="-",
        tags=("tag:a", "tag:b"),
        now=now,
        fraction=0.8,
    )
    assert not domain.is_reusable(
        _stored(), tailnet="-", tags=("tag:other",), now=now, fraction=0.8
    )
    assert not domain.is_reusable(
        _stored(), tailnet="lab", tags=("tag:k8s",), now=now, fraction=0.8
    )
    assert not domain.is_reusable(
        _stored(has_key=False), tailnet="-", tags=("tag:k8s",), now=now, fraction=0.8
    )
    assert not domain.is_reusable(None, tailnet="-", tags=("tag:k8s",), now=now, fraction=0.8)


def test_marker_fits_the_description_rules_and_differs_per_owner() -> None:
    marker = domain.key_marker("0b7c2d9e-1111-4000-8000-000000000001")
    assert len(marker) <= domain.MAX_DESCRIPTION
    assert re.fullmatch(r"[A-Za-z0-9 _-]*", marker)
    assert marker != domain.key_marker("0b7c2d9e-1111-4000-8000-000000000002")


def test_orphans_are_valid_marked_keys_other_than_the_kept_one() -> None:
    keys = [
        domain.KeyInfo(id="k1", description="tailwire abc", invalid=False),
        domain.KeyInfo(id="k2", description="tailwire abc", invalid=False),
        domain.KeyInfo(id="k3", description="tailwire abc", invalid=True),
        domain.KeyInfo(id="k4", description="someone else", invalid=False),
    ]
    orphans = domain.orphaned_keys(keys, marker="tailwire abc", keep="k1")
    assert [k.id for k in orphans] == ["k2"]


def test_owned_devices_need_the_hostname_prefix_and_one_of_the_tags() -> None:
    devices = [
        domain.Device(id="1", hostname="tailwire-pay-node-a", tags=("tag:k8s",)),
        domain.Device(id="2", hostname="tailwire-pay", tags=("tag:k8s",)),
        domain.Device(id="3", hostname="tailwire-payroll-node-a", tags=("tag:k8s",)),
        domain.Device(id="4", hostname="tailwire-pay-laptop", tags=()),
        domain.Device(id="5", hostname="Tailwire-Pay-Node-B", tags=("tag:x", "tag:k8s")),
    ]
    owned = domain.owned_devices(devices, hostname_prefix="tailwire-pay", tags=("tag:k8s",))
    assert [d.id for d in owned] == ["1", "2", "5"]


def test_devices_of_an_owner_with_a_longer_prefix_are_not_this_owners() -> None:
    devices = [
        domain.Device(id="1", hostname="tailwire-payments-node-a", tags=("tag:k8s",)),
        domain.Device(id="2", hostname="tailwire-payments-eu-node-a", tags=("tag:k8s",)),
        domain.Device(id="3", hostname="tailwire-payments-eu", tags=("tag:k8s",)),
        domain.Device(id="4", hostname="tailwire-payments-europe-1", tags=("tag:k8s",)),
    ]
    owned = domain.owned_devices(
        devices,
        hostname_prefix="tailwire-payments",
        tags=("tag:k8s",),
        # A prefix that does not extend this owner's cannot exclude anything of it.
        nested_prefixes=("tailwire-payments-eu", "tailwire-billing", "tailwire-pay"),
    )
    assert [d.id for d in owned] == ["1", "4"]
