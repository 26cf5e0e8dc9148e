"""`tailwire dev --kubeconfig`'s mode: the system runs against a cluster it did not start
(here an emulator served by the test, reached only through its kubeconfig): nothing is
seeded there, no nodeagent runs without nodes, and the services still reconcile it."""

from __future__ import annotations

from pathlib import Path

import yaml

from tailwire.shared import subjects
from tailwire.shared.events import status
from tailwire.testing import kubeapi, system

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_services_reconcile_a_cluster_given_by_kubeconfig(
    kube_emulator: kubeapi.KubeAPI,
) -> None:
    kube_emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    namespaces_before = {n["metadata"]["name"] for n in kube_emulator.objects("namespaces")}
    for doc in yaml.safe_load_all((EXAMPLES / "egressgroup-payments.yaml").read_text()):
        kube_emulator.create(doc)
    options = system.Options(kubeconfig=kube_emulator.kubeconfig_path, nodes=())
    async with system.running(options) as s:
        assert s.kube is None
        assert s.kubelet is None
        assert sorted(s.processes) == sorted(system.CENTRAL_SERVICES)
        ref = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="payments")
        # The group existed before the services started, so its status may be published
        # before any capture could subscribe: read what the compacted stream kept.
        data = await s.wait_for_stored(subjects.status(ref), within=30)
    summary = status.StatusSummary.model_validate_json(data)
    assert summary.name == "payments"
    # The launcher wrote nothing into a cluster it was only pointed at.
    assert {n["metadata"]["name"] for n in kube_emulator.objects("namespaces")} == namespaces_before
    assert kube_emulator.objects("nodes") == []
    assert s.exit_codes
    logs = "\n".join(f"--- {name}\n{tail}" for name, tail in s.unclean_logs.items())
    assert all(code == 0 for code in s.exit_codes.values()), f"{s.exit_codes}\n{logs}"
