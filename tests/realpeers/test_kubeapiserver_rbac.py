"""deploy/base's RBAC enforced by the real kube-apiserver, one ServiceAccount per service.

The base is rendered with the built kubectl (`kubectl kustomize deploy/base`); its Namespace,
ServiceAccounts, Roles, ClusterRoles and bindings are applied; then each service acts with a
bound token of its own ServiceAccount (TokenRequest), as its pod would.

Checked two ways: the server's own account of what each identity may do
(SelfSubjectRulesReview, in the namespaces that matter) is exactly what the code needs, listed
in NEEDS with where the code makes the call; and real requests go through or come back 403
(the watcher reads pods but cannot write a Secret, the keyminter writes Secrets in its
namespace only, the renderer patches EgressGroup status and applies what it owns, the
dnsupdater touches the CoreDNS ConfigMap and no other in kube-system, the nodeagent nothing).
tests/security/test_rbac_grants_only_used_verbs.py ties NEEDS to the calls a flow makes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tailwire.testing import kubeapiserver

pytestmark = pytest.mark.real_peers

NS = "tailwire-system"
BASE = kubeapiserver.CRDS.parents[0] / "base"
RBAC_KINDS = {
    "Namespace",
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
}
SERVICES = ("watcher", "keyminter", "renderer", "dnsupdater", "nodeagent")
OTHER_NS = "rbac-elsewhere"


@dataclasses.dataclass(frozen=True, order=True)
class Rule:
    group: str
    resource: str  # "pods", "egressgroups/status"
    verb: str
    name: str = ""  # a resourceNames restriction, "" for any


def rules(group: str, resources: str, verbs: str, *, name: str = "") -> set[Rule]:
    return {Rule(group, r, v, name) for r in resources.split() for v in verbs.split()}


GW, TS, EG = "gateway.networking.k8s.io", "gateway.tailscale.com", "tailscale.rajsingh.info"
APPLY_AND_PRUNE = "get list create patch delete"
LEASES = rules("coordination.k8s.io", "leases", "get create update")

# What each service's code needs, cluster-wide and per namespace (None: every namespace).
NEEDS: dict[str, dict[str | None, set[Rule]]] = {
    # services/watcher/domain.py RESOURCES, adapters/kube.py: list + watch only.
    "watcher": {
        None: rules("", "pods namespaces nodes services", "get list watch")
        | rules(GW, "gateways httproutes", "get list watch")
        | rules(EG, "egressgroups", "get list watch")
        | rules(TS, "tailscalegateways tailscaletailnets", "get list watch"),
    },
    # adapters/secrets.py (read, create, replace, delete, list by label), adapters/tailnets.py
    # (get the TailscaleTailnet), adapters/tokenreview.py (nodeagent bus credentials).
    "keyminter": {
        None: rules(TS, "tailscaletailnets", "get")
        | rules("authentication.k8s.io", "tokenreviews", "create"),
        NS: rules("", "secrets", "get list create update delete"),
    },
    # adapters/kube.py + adapters/syncing.py: a get (never onto another's object), SSA (patch,
    # create when missing), prune (list,
    # delete), status and finalizer merge patches, Node labels; egress/manifests.py owner
    # references (finalizers update); shared/leadership.py (leases, HA overlay).
    "renderer": {
        None: rules(EG, "egressgroups egressgroups/status", "patch")
        | rules(EG, "egressgroups/finalizers", "update")
        | rules(TS, "tailscalegateways tailscalegateways/status tailscaletailnets/status", "patch")
        | rules("", "nodes", "patch")
        | rules(GW, "gatewayclasses gateways httproutes referencegrants", APPLY_AND_PRUNE)
        | rules(
            "gateway.envoyproxy.io",
            "envoyproxies backendtrafficpolicies clienttrafficpolicies backends",
            APPLY_AND_PRUNE,
        )
        | rules("cert-manager.io", "certificates", APPLY_AND_PRUNE)
        | rules("", "services", APPLY_AND_PRUNE),
        NS: rules("apps", "daemonsets", APPLY_AND_PRUNE)
        | rules("", "configmaps", APPLY_AND_PRUNE)
        | LEASES,
    },
    # adapters/kube.py: ExternalDNS annotations, the CoreDNS ConfigMap, its zone ConfigMap.
    "dnsupdater": {
        None: rules(GW, "gateways httproutes", "patch"),
        "kube-system": rules("", "configmaps", "get patch", name="coredns"),
        NS: rules("", "configmaps", "get create patch") | LEASES,
    },
    # The nodeagent mounts no token and calls no Kubernetes API.
    "nodeagent": {},
}


def expected(service: str, namespace: str) -> set[Rule]:
    needs = NEEDS[service]
    return needs.get(None, set()) | needs.get(namespace, set())


@pytest.fixture(scope="module")
def base(kube_apiserver: kubeapiserver.KubeAPIServer) -> list[dict[str, Any]]:
    """deploy/base's identities and grants, applied as a user of the base would."""
    documents = [d for d in kubeapiserver.kustomize(BASE) if d["kind"] in RBAC_KINDS]
    for document in documents:
        kube_apiserver.apply(document)
    kube_apiserver.create_namespace(OTHER_NS)
    # An account bound to nothing: what every authenticated account may do anyway.
    kube_apiserver.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "rbac-baseline", "namespace": NS},
        }
    )
    return documents


@pytest.fixture(scope="module")
def clients(
    kube_apiserver: kubeapiserver.KubeAPIServer, base: list[dict[str, Any]]
) -> Iterator[dict[str, httpx.Client]]:
    """An HTTP client per service with its ServiceAccount's bound token, and the baseline."""
    accounts = {s: f"tailwire-{s}" for s in SERVICES} | {"baseline": "rbac-baseline"}
    opened = {
        s: kube_apiserver.http(kube_apiserver.service_account_kubeconfig(NS, account))
        for s, account in accounts.items()
    }
    yield opened
    for client in opened.values():
        client.close()


def test_base_has_one_account_per_service(base: list[dict[str, Any]]) -> None:
    accounts = {d["metadata"]["name"] for d in base if d["kind"] == "ServiceAccount"}
    assert {f"tailwire-{s}" for s in SERVICES} <= accounts, accounts


def _granted(
    server: kubeapiserver.KubeAPIServer, client: httpx.Client, namespace: str
) -> set[Rule]:
    review = server.request(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        body={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace},
        },
        as_=client,
    )
    assert not review["status"].get("incomplete"), review["status"]
    return {
        Rule(group, resource, verb, name)
        for rule in review["status"]["resourceRules"]
        for group in rule.get("apiGroups") or [""]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames") or [""]
    }


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("namespace", [NS, "kube-system", OTHER_NS])
def test_the_server_grants_each_service_exactly_what_its_code_needs(
    kube_apiserver: kubeapiserver.KubeAPIServer,
    clients: dict[str, httpx.Client],
    service: str,
    namespace: str,
) -> None:
    baseline = _granted(kube_apiserver, clients["baseline"], namespace)
    granted = _granted(kube_apiserver, clients[service], namespace) - baseline
    want = expected(service, namespace)
    assert sorted(want - granted) == [], f"{service} needs these in {namespace}, not granted"
    assert sorted(granted - want) == [], f"{service} is granted these in {namespace}, unneeded"


def _status(client: httpx.Client, method: str, path: str, body: Any = None, **kw: Any) -> int:
    headers = {"Content-Type": kw.pop("content_type", "application/json")}
    response = client.request(method, path, json=body, headers=headers, **kw)
    return response.status_code


def _secret(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"authkey": "tskey-test"},
    }


def _group(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{EG}/v1alpha1",
        "kind": "EgressGroup",
        "metadata": {"name": name},
        "spec": {"selector": {"podSelector": {"matchLabels": {"app": "api"}}}},
    }


def test_the_watcher_reads_and_watches_but_writes_nothing(
    clients: dict[str, httpx.Client],
) -> None:
    watcher = clients["watcher"]
    assert _status(watcher, "GET", "/api/v1/pods") == 200
    assert _status(watcher, "GET", f"/apis/{EG}/v1alpha1/egressgroups") == 200
    with watcher.stream(
        "GET", "/api/v1/namespaces", params={"watch": "true", "timeoutSeconds": "1"}
    ) as stream:
        assert stream.status_code == 200
    assert _status(watcher, "POST", f"/api/v1/namespaces/{NS}/secrets", _secret("w", NS)) == 403
    assert _status(watcher, "GET", f"/api/v1/namespaces/{NS}/secrets") == 403
    assert _status(watcher, "POST", f"/apis/{EG}/v1alpha1/egressgroups", _group("w")) == 403


def test_the_keyminter_writes_secrets_in_its_namespace_only(
    clients: dict[str, httpx.Client],
) -> None:
    keyminter = clients["keyminter"]
    secrets = f"/api/v1/namespaces/{NS}/secrets"
    assert _status(keyminter, "POST", secrets, _secret("rbac-key", NS)) == 201
    current = keyminter.get(f"{secrets}/rbac-key").json()
    current["stringData"] = {"authkey": "tskey-renewed"}
    assert _status(keyminter, "PUT", f"{secrets}/rbac-key", current) == 200
    assert _status(keyminter, "GET", secrets, params={"labelSelector": "a=b"}) == 200
    assert _status(keyminter, "DELETE", f"{secrets}/rbac-key") == 200
    elsewhere = f"/api/v1/namespaces/{OTHER_NS}/secrets"
    assert _status(keyminter, "POST", elsewhere, _secret("rbac-key", OTHER_NS)) == 403
    assert _status(keyminter, "GET", "/api/v1/pods") == 403
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": "not-a-token"},
    }
    assert _status(keyminter, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", review) == 201


def test_the_renderer_applies_what_it_owns_and_writes_status(
    kube_apiserver: kubeapiserver.KubeAPIServer, clients: dict[str, httpx.Client]
) -> None:
    renderer = clients["renderer"]
    group = kube_apiserver.apply(_group("rbac-group"))
    path = f"/apis/{EG}/v1alpha1/egressgroups/rbac-group"
    merge = "application/merge-patch+json"
    status = {"status": {"matchedPods": 1}}
    assert _status(renderer, "PATCH", f"{path}/status", status, content_type=merge) == 200
    finalizers = {"metadata": {"finalizers": ["tailwire.dev/cleanup"]}}
    assert _status(renderer, "PATCH", path, finalizers, content_type=merge) == 200
    assert _status(renderer, "GET", path) == 403  # it learns groups from the bus, not the API
    # Server-side apply creating a ConfigMap owned (blockOwnerDeletion) by the group: the
    # OwnerReferencesPermissionEnforcement plugin checks egressgroups/finalizers update.
    owned: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "rbac-owned",
            "namespace": NS,
            "ownerReferences": [
                {
                    "apiVersion": f"{EG}/v1alpha1",
                    "kind": "EgressGroup",
                    "name": "rbac-group",
                    "uid": group["metadata"]["uid"],
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {"k": "v"},
    }
    apply = {"content_type": "application/apply-patch+yaml"}
    params = {"fieldManager": "tailwire", "force": "true"}
    configmaps = f"/api/v1/namespaces/{NS}/configmaps"
    assert (
        _status(renderer, "PATCH", f"{configmaps}/rbac-owned", owned, params=params, **apply) == 201
    )
    # That grant is what lets it through: the dnsupdater may create ConfigMaps here too, but
    # not with a blocking owner reference to a group.
    by_other = {**owned, "metadata": {**owned["metadata"], "name": "rbac-owned-by-other"}}
    refused = clients["dnsupdater"].post(configmaps, json=by_other)
    assert refused.status_code == 403
    assert "cannot set blockOwnerDeletion" in refused.text, refused.text
    elsewhere = {**owned, "metadata": {"name": "rbac-owned", "namespace": OTHER_NS}}
    path_elsewhere = f"/api/v1/namespaces/{OTHER_NS}/configmaps/rbac-owned"
    assert _status(renderer, "PATCH", path_elsewhere, elsewhere, params=params, **apply) == 403
    assert _status(renderer, "DELETE", f"{configmaps}/rbac-owned") == 200
    assert _status(renderer, "GET", f"/api/v1/namespaces/{NS}/secrets") == 403
    # The finalizer goes as it came.
    release = {"metadata": {"finalizers": None}}
    assert _status(renderer, "PATCH", path, release, content_type=merge) == 200


def test_the_dnsupdater_touches_coredns_and_its_own_configmaps_only(
    kube_apiserver: kubeapiserver.KubeAPIServer, clients: dict[str, httpx.Client]
) -> None:
    dnsupdater = clients["dnsupdater"]
    for name in ("coredns", "rbac-other"):
        kube_apiserver.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "kube-system"},
                "data": {"Corefile": ".:53 {\n    forward . /etc/resolv.conf\n}\n"},
            }
        )
    merge = "application/merge-patch+json"
    coredns = "/api/v1/namespaces/kube-system/configmaps/coredns"
    assert _status(dnsupdater, "GET", coredns) == 200
    patch = {"data": {"tailwire.server": "# zones"}}
    assert _status(dnsupdater, "PATCH", coredns, patch, content_type=merge) == 200
    other = "/api/v1/namespaces/kube-system/configmaps/rbac-other"
    assert _status(dnsupdater, "GET", other) == 403
    assert _status(dnsupdater, "PATCH", other, patch, content_type=merge) == 403
    own = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "rbac-zones", "namespace": NS},
        "data": {"zone": ""},
    }
    assert _status(dnsupdater, "POST", f"/api/v1/namespaces/{NS}/configmaps", own) == 201
    assert _status(dnsupdater, "GET", f"/api/v1/namespaces/{NS}/secrets") == 403


def test_the_nodeagent_may_do_nothing(clients: dict[str, httpx.Client]) -> None:
    nodeagent = clients["nodeagent"]
    for path in ("/api/v1/pods", "/api/v1/nodes", f"/api/v1/namespaces/{NS}/secrets"):
        assert _status(nodeagent, "GET", path) == 403, path
