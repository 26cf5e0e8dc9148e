"""A node's copy of the group's tailscaled config: its hostname, and the exit node resolved
against the gateway's peers into what tailscaled accepts (issue 14, items 1 to 3)."""

from __future__ import annotations

from typing import Any

from tailwire.services.nodeagent.domain import gatewayfile

STATUS: dict[str, Any] = {
    "Peer": {
        "nodekey:a": {
            "ID": "7",
            "HostName": "exit-fra1",
            "DNSName": "exit-fra1.your-org.ts.net.",
            "TailscaleIPs": ["100.64.0.7", "fd7a:115c:a1e0::7"],
            "ExitNodeOption": True,
        },
        "nodekey:b": {
            "ID": "8",
            "HostName": "db",
            "DNSName": "db.your-org.ts.net.",
            "TailscaleIPs": ["100.64.0.8"],
            "ExitNodeOption": False,
        },
        "nodekey:c": {
            "ID": "9",
            "HostName": "db",
            "DNSName": "db-1.your-org.ts.net.",
            "TailscaleIPs": ["100.64.0.9"],
        },
    }
}
PEERS = gatewayfile.peers_from_status(STATUS)
CONFIG = {"Version": "alpha0", "Hostname": "tailwire-payments", "exitNode": "exit-fra1"}


def test_magicdns_name_short_name_ip_and_id_resolve_to_the_stable_id() -> None:
    for target in ("exit-fra1.your-org.ts.net", "exit-fra1.your-org.ts.net.", "exit-fra1",
                   "100.64.0.7", "fd7a:115c:a1e0::7", "7", "EXIT-FRA1"):  # fmt: skip
        found = gatewayfile.resolve_exit_node(target, PEERS)
        assert (found.stable_id, found.reason) == ("7", ""), target
        assert found.describe() == "exit-fra1.your-org.ts.net (100.64.0.7, id 7)"


def test_unknown_ambiguous_unoffered_and_not_running_are_named() -> None:
    missing = gatewayfile.resolve_exit_node("exit-ams1.your-org.ts.net", PEERS)
    assert (missing.stable_id, missing.reason) == ("", gatewayfile.NOT_FOUND)
    assert "exit-ams1.your-org.ts.net" in missing.message
    ambiguous = gatewayfile.resolve_exit_node("db", PEERS)
    assert ambiguous.reason == gatewayfile.AMBIGUOUS
    assert "db.your-org.ts.net" in ambiguous.message
    assert "db-1.your-org.ts.net" in ambiguous.message
    unoffered = gatewayfile.resolve_exit_node("db.your-org.ts.net", PEERS)
    assert (unoffered.stable_id, unoffered.reason) == ("8", gatewayfile.NOT_OFFERED)
    down = gatewayfile.resolve_exit_node("exit-fra1", None)
    assert (down.stable_id, down.reason) == ("", gatewayfile.NOT_RUNNING)
    none = gatewayfile.resolve_exit_node("", None)
    assert not none.wanted
    assert none.reason == ""


def test_localize_writes_the_node_hostname_and_the_resolved_id() -> None:
    found = gatewayfile.resolve_exit_node("exit-fra1", PEERS)
    local = gatewayfile.localize(CONFIG, hostname="tailwire-payments-node-a", exit_node=found)
    assert local == {**CONFIG, "Hostname": "tailwire-payments-node-a", "exitNode": "7"}
    assert CONFIG["exitNode"] == "exit-fra1"  # the group's config is not changed


def test_an_unresolved_or_removed_exit_node_is_written_empty_so_a_reload_clears_it() -> None:
    unresolved = gatewayfile.resolve_exit_node("exit-ams1", PEERS)
    assert gatewayfile.localize(CONFIG, hostname=None, exit_node=unresolved)["exitNode"] == ""
    removed = {**CONFIG, "exitNode": ""}
    local = gatewayfile.localize(removed, hostname=None, exit_node=gatewayfile.ExitNode(target=""))
    assert local["exitNode"] == ""
    assert local["Hostname"] == "tailwire-payments"  # no plan hostname: the config's own
