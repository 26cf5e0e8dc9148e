"""The RBAC of `deploy/base` against the calls the services really make.

The four central services run in-process on one emulated Kubernetes API and a real
nats-server, each with its own Kubernetes client carrying its own User-Agent, through a
representative flow: an EgressGroup with a member pod (mirror, render, apply, status,
finalizer, node label, key minted into a Secret), a TailscaleGateway with a Service (the
ingress stack), a tailnet Gateway with routes (records, CoreDNS, ExternalDNS annotations),
then the group's deletion (finalizer released, key revoked, Secret deleted). The emulator's
request log, split by User-Agent, gives each service's (apiGroup, resource, verb, namespace).

Checked: every call is allowed by the rules bound to that service's account, and every
granted verb is used, except the few listed in UNEXERCISED with the reason the flow cannot
reach them. The nodeagent's account has no rule at all (it mounts no token).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tailwire.services.dnsupdater import app as dns_app
from tailwire.services.dnsupdater import config as dns_config
from tailwire.services.keyminter import app as key_app
from tailwire.services.keyminter import configuration
from tailwire.services.renderer import app as render_app
from tailwire.services.renderer.egress import options
from tailwire.services.watcher import app as watch_app
from tailwire.shared import runtime, settings
from tailwire.shared.k8s import labels, names
from tailwire.testing import controlapi, kubeapi, system

from . import rbac

NS = rbac.NAMESPACE
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SERVICES = ("watcher", "keyminter", "renderer", "dnsupdater")
_APPLY_AND_PRUNE = ("get", "list", "create", "patch", "delete")
_STACK = (
    ("gateway.networking.k8s.io", ("gatewayclasses", "gateways", "httproutes", "referencegrants")),
    (
        "gateway.envoyproxy.io",
        ("envoyproxies", "backendtrafficpolicies", "clienttrafficpolicies", "backends"),
    ),
    ("cert-manager.io", ("certificates",)),
    ("", ("services",)),
)
_LEASES = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}
# Granted and needed, but not reached by this flow; each one checked by reading the code.
# What a user of the homelab stack applies besides deploy/base: the keyminter may read the
# TailscaleTailnet's Secret in namespace tailscale.
EXAMPLE_RBAC = [
    d
    for d in yaml.safe_load_all((EXAMPLES / "homelab-stack.yaml").read_text())
    if d and d["apiVersion"].startswith("rbac.authorization.k8s.io/")
]

UNEXERCISED: dict[str, set[tuple[str, str, str]]] = {
    # The watcher only lists and watches; tests/deploy pins its rules to the read triad.
    "watcher": {
        (g, r, "get")
        for g, r in (
            ("", "pods"),
            ("", "namespaces"),
            ("", "nodes"),
            ("", "services"),
            ("gateway.networking.k8s.io", "gateways"),
            ("gateway.networking.k8s.io", "httproutes"),
            ("tailscale.rajsingh.info", "egressgroups"),
            ("gateway.tailscale.com", "tailscalegateways"),
            ("gateway.tailscale.com", "tailscaletailnets"),
        )
    },
    # Named tailnets: adapters/tailnets.py reads the TailscaleTailnet (this flow mints on the
    # default tailnet). TokenReview: adapters/tokenreview.py, for nodeagent bus credentials;
    # this flow's nats-server has no auth callout (tests/keyminter/test_bus_credentials.py).
    "keyminter": {
        ("gateway.tailscale.com", "tailscaletailnets", "get"),
        ("authentication.k8s.io", "tokenreviews", "create"),
    },
    # Every managed kind goes through the one apply (a get first: never onto an object that
    # is not tailwire's; then SSA patch, creating when missing) and
    # prune (list by owner label, delete) path of adapters/kube.py + adapters/syncing.py; the
    # flow proves that path on DaemonSets and ConfigMaps, which are not listed here. The
    # OwnerReferencesPermissionEnforcement admission plugin checks finalizers/update for
    # owner references with blockOwnerDeletion (egress/manifests.py); it is no API call.
    # Leases: leader election, switched on by the HA overlay, whose binding relies on them.
    "renderer": {(g, r, v) for g, rs in _STACK for r in rs for v in _APPLY_AND_PRUNE}
    | {("tailscale.rajsingh.info", "egressgroups/finalizers", "update")}
    | _LEASES,
    # The ExternalDNS target annotation of a tailnet Gateway (adapters/kube.py patches
    # gateways too); leases as for the renderer.
    "dnsupdater": {("gateway.networking.k8s.io", "gateways", "patch")} | _LEASES,
}


def seed(kube: kubeapi.KubeAPI) -> None:
    for name in (NS, "payments", "tailscale", "apps", "kube-system"):
        if kube.get("namespaces", name=name) is None:
            kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-a", "labels": {"kubernetes.io/hostname": "node-a"}},
        }
    )
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": ".:53 {\n    forward . /etc/resolv.conf\n}\n"},
        }
    )
    kube.create(
        {
            "apiVersion": "tailscale.rajsingh.info/v1alpha1",
            "kind": "EgressGroup",
            "metadata": {"name": "payments"},
            "spec": {"selector": {"podSelector": {"matchLabels": {"app": "api"}}}},
        }
    )
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "api-0", "namespace": "payments", "labels": {"app": "api"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "a", "image": "a"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.7", "podIPs": [{"ip": "10.244.0.7"}]},
        }
    )
    # The ingress side: the homelab stack (a TailscaleGateway, its tailnet, four Services).
    for document in yaml.safe_load_all((EXAMPLES / "homelab-stack.yaml").read_text()):
        if not document or document["apiVersion"].startswith("rbac.authorization.k8s.io/"):
            continue  # the example's RBAC is checked with deploy/base's (EXAMPLE_RBAC)
        namespace = document["metadata"].get("namespace")
        if namespace and kube.get("namespaces", name=namespace) is None:
            kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        kube.create(document)
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "envoy-tailscale",
                "namespace": "tailscale",
                "labels": {
                    labels.ENVOY_OWNING_GATEWAY_NAME: "tailscale-gateway",
                    labels.ENVOY_OWNING_GATEWAY_NAMESPACE: "tailscale",
                    "tailwire.dev/expose": "true",
                },
            },
            "spec": {
                "type": "LoadBalancer",
                "loadBalancerClass": "tailscale",
                "ports": [{"port": 443}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "100.64.0.9"}]}},
        }
    )
    kube.create(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "tailscale-gateway", "namespace": "tailscale"},
            "spec": {
                "gatewayClassName": "tailscale",
                "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}],
            },
        }
    )
    parent = {"name": "tailscale-gateway", "namespace": "tailscale"}
    kube.create(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {
                "name": "web",
                "namespace": "apps",
                "annotations": {labels.PUBLIC: "true"},
            },
            "spec": {"hostnames": ["web.example.test"], "parentRefs": [parent]},
            "status": {
                "parents": [
                    {
                        "parentRef": parent,
                        "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
                        "conditions": [{"type": "Accepted", "status": "True"}],
                    }
                ]
            },
        }
    )


def tagged(kube: kubeapi.KubeAPI, service: str) -> Callable[[], Awaitable[client.ApiClient]]:
    async def factory() -> client.ApiClient:
        api = await kube.api_client()
        api.user_agent = f"tailwire-{service}"
        return api

    return factory


@contextlib.asynccontextmanager
async def services_running(
    kube: kubeapi.KubeAPI, *, bus: settings.BusSettings, control: controlapi.FakeControlAPI
) -> AsyncIterator[None]:
    oauth = control.add_oauth_client(scopes=["auth_keys", "devices:core", "dns"], tags=["tag:k8s"])
    kube_settings = settings.KubernetesSettings(namespace=NS)
    opened: list[client.ApiClient] = []

    def per_call(service: str) -> Callable[..., Awaitable[client.ApiClient]]:
        make = tagged(kube, service)

        async def factory(*_: Any) -> client.ApiClient:
            api = await make()
            opened.append(api)
            return api

        return factory

    # The renderer first: it declares the streams, which the others wait for on start.
    runtimes: list[runtime.ServiceRuntime] = [
        render_app.build(
            bus_settings=bus,
            opts=options.Options(gateway_namespace=NS),
            kube_client_factory=per_call("renderer"),
        ).runtime,
        watch_app.wire(
            bus_settings=bus, kube_settings=kube_settings, api_client_factory=per_call("watcher")
        ).runtime,
        key_app.create(
            bus_settings=bus,
            keyminter_settings=configuration.KeyminterSettings(renewal_check_seconds=3600),
            tailscale_settings=settings.TailscaleSettings(
                tailscale_api_url=control.url,
                tailscale_tailnet="-",
                tailscale_oauth_client_id=oauth.client_id,
                tailscale_oauth_client_secret=oauth.client_secret,  # type: ignore[arg-type]
            ),
            kube_settings=kube_settings,
            api_client=per_call("keyminter"),
        ),
        dns_app.wire(
            bus_settings=bus,
            dns_settings=dns_config.DnsUpdaterSettings.model_validate(
                {
                    "zones": [{"zone": "example.test", "backends": ["coredns"]}],
                    "coredns_configmap": "kube-system/coredns",
                    "gateway_internal_service": f"{NS}/gateway-internal",
                    "external_dns": True,
                }
            ),
            kube_settings=kube_settings,
            api_client_factory=per_call("dnsupdater"),
        ).runtime,
    ]
    started: list[runtime.ServiceRuntime] = []
    try:
        for service_runtime in runtimes:
            await service_runtime.app.start()
            started.append(service_runtime)
        yield
    finally:
        for service_runtime in reversed(started):
            await service_runtime.app.stop()
        for api in opened:
            with contextlib.suppress(Exception):
                await api.close()


def calls_by_service(kube: kubeapi.KubeAPI) -> dict[str, set[rbac.Grant]]:
    found: dict[str, set[rbac.Grant]] = {s: set() for s in SERVICES}
    for record in kube.requests:
        agent = record.user_agent
        if not agent.startswith("tailwire-") or record.resource is None or record.verb is None:
            continue
        resource = record.resource + (f"/{record.subresource}" if record.subresource else "")
        verbs = {record.verb}
        if (
            record.verb == "patch"
            and "fieldManager" in record.params
            and record.resource != "nodes"
        ):
            # Server-side apply creates a missing object, which the API server authorizes as
            # create too. Nodes exist before the renderer labels them: never created.
            verbs.add("create")
        for verb in verbs:
            found[agent.removeprefix("tailwire-")].add(
                rbac.Grant(record.group or "", resource, verb, record.namespace)
            )
    return found


@pytest.mark.timeout(60)
async def test_every_call_is_allowed_and_every_granted_verb_is_used(
    kube_emulator: kubeapi.KubeAPI, bus_settings: settings.BusSettings
) -> None:
    kube = kube_emulator
    seed(kube)
    async with (
        controlapi.serve() as control,
        services_running(kube, bus=bus_settings, control=control),
    ):
        await system.eventually(
            lambda: kube.get("secrets", name=names.authkey_secret("payments"), namespace=NS),
            within=20,
            what="the group's authkey Secret",
        )
        await system.eventually(
            lambda: ((kube.get("egressgroups", name="payments") or {}).get("status") or {}).get(
                "matchedPods"
            ),
            within=20,
            what="the group's status",
        )
        await asyncio.sleep(0.5)  # let the DNS reconciler and the apply loop finish a pass
        kube.delete("egressgroups", name="payments")
        await system.eventually(
            lambda: kube.get("egressgroups", name="payments") is None,
            within=20,
            what="the group's finalizer released",
        )
        await system.eventually(
            lambda: (
                kube.get("secrets", name=names.authkey_secret("payments"), namespace=NS) is None
            ),
            within=20,
            what="the Secret deleted on revocation",
        )
    documents = rbac.render() + EXAMPLE_RBAC
    calls = calls_by_service(kube)
    report = []
    for service in SERVICES:
        granted = rbac.grants(documents, service_account=f"tailwire-{service}")
        refused = sorted(c for c in calls[service] if not rbac.allowed(c, granted))
        unused = sorted(
            g
            for g in granted
            if not rbac.used(g, calls[service])
            and (g.group, g.resource, g.verb) not in UNEXERCISED.get(service, set())
        )
        stale = UNEXERCISED.get(service, set()) - {(g.group, g.resource, g.verb) for g in granted}
        report += [f"{service} allowance for an ungranted verb: {e}" for e in sorted(stale)]
        report += [f"{service} calls, not allowed: {c}" for c in refused]
        report += [f"{service} granted, never used: {g}" for g in unused]
    assert all(calls[service] for service in SERVICES), calls
    assert not rbac.grants(documents, service_account="tailwire-nodeagent")
    assert not report, "\n".join(report)
