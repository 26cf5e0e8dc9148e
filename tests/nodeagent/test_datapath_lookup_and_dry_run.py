"""Pod netns found by UID through `/proc/*/cgroup` (a fake proc root pointing at a real
netns), and `--dry-run` printing the changes without making them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tailwire.services.nodeagent.adapters import namespaces
from tests.nodeagent import conftest as nodeagent

UID = "5d1e2c3a-9f00-4b6e-8a7c-0123456789ab"


def fake_proc(root: Path, *, pid: int, cgroup: str, netns_path: str | None) -> None:
    entry = root / str(pid)
    (entry / "ns").mkdir(parents=True)
    (entry / "cgroup").write_text(cgroup)
    if netns_path is not None:
        (entry / "ns" / "net").symlink_to(netns_path)


def test_uid_lookup_reads_both_cgroup_drivers(tmp_path: Path) -> None:
    target = tmp_path / "netns-file"
    target.write_text("")
    fake_proc(tmp_path / "proc", pid=1, cgroup="0::/init.scope\n", netns_path=str(target))
    systemd = f"0::/kubepods.slice/kubepods-besteffort-pod{UID.replace('-', '_')}.slice/cri.scope\n"
    fake_proc(tmp_path / "proc", pid=4242, cgroup=systemd, netns_path=str(target))
    (tmp_path / "proc" / "self").mkdir()
    found = namespaces.find_pod_netns(UID, proc_root=str(tmp_path / "proc"))
    assert found == str(tmp_path / "proc" / "4242" / "ns" / "net")
    assert namespaces.find_pod_netns("other", proc_root=str(tmp_path / "proc")) is None
    with pytest.raises(namespaces.NamespaceNotFound, match="no process of pod other"):
        namespaces.resolve(netns=None, pod_uid="other", proc_root=str(tmp_path / "proc"))


@pytest.mark.root
async def test_a_pod_found_by_uid_is_stitched(topology: nodeagent.Topology, tmp_path: Path) -> None:
    pod = topology.pod(index=1)
    cgroupfs = f"12:pids:/kubepods/burstable/pod{UID}/0123abcd\n"
    fake_proc(tmp_path / "proc", pid=77, cgroup=cgroupfs, netns_path=f"/run/netns/{pod}")
    member = nodeagent.member(uid=UID, pod=pod, index=1).model_copy(update={"netns": None})
    agent = nodeagent.make_agent(tmp_path, proc_root=str(tmp_path / "proc"))
    ack = await agent.apply_plan(nodeagent.plan(topology, member))
    assert [(p.ok, p.error) for p in ack.pods] == [(True, None)]
    assert topology.factory.ping(netns=pod, address=topology.peer.peer_ipv4)


@pytest.mark.root
async def test_dry_run_prints_the_changes_and_makes_none(
    topology: nodeagent.Topology, tmp_path: Path
) -> None:
    pod = topology.pod(index=1)
    out = io.StringIO()
    agent = nodeagent.make_agent(tmp_path, dry_run=True)
    agent.out = out
    ack = await agent.apply_plan(
        nodeagent.plan(topology, nodeagent.member(uid="uid-a", pod=pod, index=1))
    )
    printed = out.getvalue()
    assert f"ip -n {topology.gateway} link add tw" in printed
    assert f"peer name ts0 netns {pod}" in printed
    assert "route add 100.64.0.0/10 via 169.254.64.2 dev ts0 proto 77" in printed
    assert "nft -f -" in printed
    assert "masquerade" in printed
    assert ack.netlink_writes == 0
    f = topology.factory
    assert "ts0" not in f.run(["ip", "-o", "link", "show"], netns=pod).stdout
    assert "tailwire" not in f.run(["nft", "list", "tables"], netns=topology.gateway).stdout
