"""Snapshot builders for the dnsupdater tests: the seed's Envoy Gateway + Tailscale stack."""

from __future__ import annotations

import datetime
import itertools

from tailwire.shared.events import cluster
from tailwire.shared.k8s import labels

_versions = itertools.count(1)


def _meta(
    *,
    namespace: str,
    name: str,
    labels_: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    created: datetime.datetime | None = None,
) -> cluster.Meta:
    return cluster.Meta(
        uid=f"uid-{namespace}-{name}",
        namespace=namespace,
        name=name,
        resource_version=str(next(_versions)),
        labels=labels_ or {},
        annotations=annotations or {},
        creation_timestamp=created,
    )


def gateway(
    name: str = "tailscale-gateway", *, namespace: str = "tailscale", deleted: bool = False
) -> cluster.GatewaySnapshot:
    return cluster.GatewaySnapshot(
        meta=_meta(namespace=namespace, name=name),
        gateway_class_name="tailscale",
        listeners=(cluster.Listener(name="https", port=443, protocol="HTTPS"),),
        deleted=deleted,
    )


def tailscale_service(
    *,
    gateway_name: str = "tailscale-gateway",
    gateway_namespace: str = "tailscale",
    ips: tuple[str, ...] = ("100.64.0.10", "fd7a:115c:a1e0::a"),
    hostname: str | None = "gateway-envoy.tail1234.ts.net",
    name: str = "envoy-tailscale-gateway",
    namespace: str = "envoy-gateway",
    load_balancer_class: str | None = "tailscale",
    deleted: bool = False,
) -> cluster.ServiceSnapshot:
    ingress = [cluster.LoadBalancerIngress(ip=ip) for ip in ips]
    if hostname:
        ingress.append(cluster.LoadBalancerIngress(hostname=hostname))
    return cluster.ServiceSnapshot(
        meta=_meta(
            namespace=namespace,
            name=name,
            labels_={
                labels.ENVOY_OWNING_GATEWAY_NAME: gateway_name,
                labels.ENVOY_OWNING_GATEWAY_NAMESPACE: gateway_namespace,
            },
            annotations={labels.TAILSCALE_HOSTNAME: "gateway-envoy"},
        ),
        service_type="LoadBalancer",
        load_balancer_class=load_balancer_class,
        load_balancer_ingress=tuple(ingress),
        deleted=deleted,
    )


def route(
    name: str,
    *,
    hostnames: tuple[str, ...],
    namespace: str = "apps",
    gateway_name: str = "tailscale-gateway",
    gateway_namespace: str = "tailscale",
    accepted: bool | None = True,
    annotations: dict[str, str] | None = None,
    deleted: bool = False,
    created: datetime.datetime | None = None,
) -> cluster.HTTPRouteSnapshot:
    parent = cluster.ParentRef(namespace=gateway_namespace, name=gateway_name)
    parents = (
        () if accepted is None else (cluster.RouteParentStatus(parent=parent, accepted=accepted),)
    )
    return cluster.HTTPRouteSnapshot(
        meta=_meta(namespace=namespace, name=name, annotations=annotations, created=created),
        parent_refs=(parent,),
        hostnames=hostnames,
        parents=parents,
        deleted=deleted,
    )
