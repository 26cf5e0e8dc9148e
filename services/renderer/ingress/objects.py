"""Kubernetes objects (as `kubectl get -o yaml` prints them) -> the snapshots rendering reads.

What `tailwire render --cluster` and the golden tests feed the ingress side: Services,
Gateways, HTTPRoutes and TailscaleTailnets become the same snapshot models the watcher
publishes. Other kinds are ignored. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tailwire.services.renderer.ingress import inputs
from tailwire.shared.events import cluster
from tailwire.shared.resources import tailscaletailnet


def _meta(raw: dict[str, Any]) -> cluster.Meta:
    metadata = raw.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = str(metadata.get("name", ""))
    return cluster.Meta(
        uid=str(metadata.get("uid") or f"{namespace or '_'}/{name}"),
        namespace=namespace,
        name=name,
        resource_version=str(metadata.get("resourceVersion") or ""),
        generation=metadata.get("generation"),
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
    )


def _service(raw: dict[str, Any]) -> cluster.ServiceSnapshot:
    spec = raw.get("spec") or {}
    ingress = ((raw.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return cluster.ServiceSnapshot(
        meta=_meta(raw),
        service_type=spec.get("type", "ClusterIP"),
        load_balancer_class=spec.get("loadBalancerClass"),
        cluster_ips=tuple(
            spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        ),
        ports=tuple(
            cluster.ServicePort(
                name=port.get("name"),
                port=int(port["port"]),
                protocol=port.get("protocol", "TCP"),
                target_port=port.get("targetPort"),
                app_protocol=port.get("appProtocol"),
            )
            for port in spec.get("ports") or []
        ),
        selector=dict(spec.get("selector") or {}),
        load_balancer_ingress=tuple(
            cluster.LoadBalancerIngress(ip=item.get("ip"), hostname=item.get("hostname"))
            for item in ingress
        ),
    )


def _gateway(raw: dict[str, Any]) -> cluster.GatewaySnapshot:
    spec = raw.get("spec") or {}
    return cluster.GatewaySnapshot(
        meta=_meta(raw),
        gateway_class_name=str(spec.get("gatewayClassName", "")),
        listeners=tuple(
            cluster.Listener(
                name=str(listener.get("name", "")),
                port=int(listener.get("port", 0)),
                protocol=str(listener.get("protocol", "")),
                hostname=listener.get("hostname"),
            )
            for listener in spec.get("listeners") or []
        ),
    )


def _route(raw: dict[str, Any]) -> cluster.HTTPRouteSnapshot:
    spec = raw.get("spec") or {}
    return cluster.HTTPRouteSnapshot(
        meta=_meta(raw),
        parent_refs=tuple(
            cluster.ParentRef(
                name=str(ref.get("name", "")),
                namespace=ref.get("namespace"),
                section_name=ref.get("sectionName"),
            )
            for ref in spec.get("parentRefs") or []
        ),
        hostnames=tuple(spec.get("hostnames") or ()),
    )


def _namespace(raw: dict[str, Any]) -> cluster.NamespaceSnapshot:
    return cluster.NamespaceSnapshot(meta=_meta(raw))


def _tailnet(raw: dict[str, Any]) -> cluster.TailscaleTailnetSnapshot:
    return cluster.TailscaleTailnetSnapshot(
        meta=_meta(raw),
        api_version=str(raw.get("apiVersion", tailscaletailnet.API_VERSION)),
        spec=dict(raw.get("spec") or {}),
    )


def snapshot_of(
    raw: dict[str, Any],
) -> cluster.ServiceSnapshot | cluster.GatewaySnapshot | cluster.HTTPRouteSnapshot | None:
    """The snapshot of a Service, Gateway or HTTPRoute manifest; None for other kinds."""
    kind, api = raw.get("kind"), str(raw.get("apiVersion", ""))
    if kind == "Service" and api == "v1":
        return _service(raw)
    if kind == "Gateway" and api.startswith("gateway.networking.k8s.io/"):
        return _gateway(raw)
    if kind == "HTTPRoute" and api.startswith("gateway.networking.k8s.io/"):
        return _route(raw)
    return None


def snapshots_from(objects: Iterable[dict[str, Any]]) -> inputs.Snapshots:
    """Snapshots of the Services, Gateways, HTTPRoutes, TailscaleTailnets and Namespaces (whose
    `tailwire.dev/accept-from` lets TailscaleGateways of other namespaces write there) among
    `objects`.

    Raises ValueError (pydantic's, naming the field) for an object of those kinds that does
    not fit its snapshot model.
    """
    services, gateways, routes, tailnets, namespaces = [], [], [], [], []
    for raw in objects:
        kind, api = raw.get("kind"), str(raw.get("apiVersion", ""))
        if kind == "Service" and api == "v1":
            services.append(_service(raw))
        elif kind == "Gateway" and api.startswith("gateway.networking.k8s.io/"):
            gateways.append(_gateway(raw))
        elif kind == "HTTPRoute" and api.startswith("gateway.networking.k8s.io/"):
            routes.append(_route(raw))
        elif kind == tailscaletailnet.KIND and api == tailscaletailnet.API_VERSION:
            tailnets.append(_tailnet(raw))
        elif kind == "Namespace" and api == "v1":
            namespaces.append(_namespace(raw))
    return inputs.Snapshots.of(
        services=services,
        gateways=gateways,
        tailnets=tailnets,
        routes=routes,
        namespaces=namespaces,
    )
