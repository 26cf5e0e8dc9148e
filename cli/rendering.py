"""`tailwire render`: the renderer's computation offline, from files to manifests.

Reads custom resources (and optionally a cluster dump of Namespaces, Nodes and Pods), builds
the same view the running renderer builds from the bus, and prints every manifest the
renderer would apply plus one `kind: NodePlan` document per node: to stdout, or one file per
object into a directory. Output is deterministic byte for byte. Invalid input exits 1 with
the messages of `tailwire validate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import pydantic
import yaml

from tailwire.cli import validating
from tailwire.services.renderer import domain, renderers, view
from tailwire.shared import settings


def _load(paths: Sequence[str], *, out: TextIO, err: TextIO) -> list[dict[str, Any]] | None:
    """Every object of every file, or None after printing the problems."""
    checked, failed = validating.check_files(paths, out=out, err=err)
    return None if failed else [result.raw for result in checked]


class _Dumper(yaml.SafeDumper):
    """Plain YAML: no anchors or aliases, whatever objects the documents share."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Multi-line strings (config files in ConfigMaps) as literal blocks, readable in review.
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _text)


def dump(document: dict[str, Any]) -> str:
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000
    )


def _reason(exc: ValueError) -> str:
    """A settings validator's own message, without pydantic's framing."""
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(str(e.get("ctx", {}).get("error", e["msg"])) for e in exc.errors())
    return str(exc)


def render_files(
    *,
    resources: Sequence[str],
    cluster: Sequence[str] = (),
    cluster_cidrs: Sequence[str] | None = None,
    cluster_name: str | None = None,
    namespace: str | None = None,
    output: Path | None,
    out: TextIO,
    err: TextIO,
    computations: Sequence[domain.Renderer] = renderers.RENDERERS,
) -> int:
    """0 and the rendered documents, or 1 and one line per problem."""
    objects = _load([*resources, *cluster], out=out, err=err)
    if objects is None:
        return 1
    network = settings.ClusterNetworkSettings()
    cidrs = tuple(cluster_cidrs) if cluster_cidrs else tuple(network.cluster_cidrs)
    try:
        settings.ClusterNetworkSettings(cluster_cidrs=list(cidrs))
    except ValueError as exc:
        out.write(f"--cluster-cidrs: {_reason(exc)}\n")
        return 1
    if cluster_name is None:
        cluster_name = network.cluster_name
    try:
        settings.ClusterNetworkSettings(cluster_name=cluster_name)
    except ValueError as exc:
        out.write(f"--cluster-name: {_reason(exc)}\n")
        return 1
    try:
        gateway = settings.GatewaySettings()
    except pydantic.ValidationError as exc:
        out.write(f"{settings.describe_error(exc)}\n")
        return 1
    cluster_view = view.ClusterView()
    for raw in objects:
        snapshot = view.snapshot_from_manifest(raw)
        if snapshot is not None:
            cluster_view.apply(snapshot)
    source = domain.RenderInput(
        view=cluster_view,
        cluster_cidrs=cidrs,
        gateway_namespace=namespace or settings.KubernetesSettings().namespace,
        cluster_name=cluster_name,
        gateway_image=gateway.gateway_image,
    )
    rendered = domain.combine([compute(source) for compute in computations])
    documents = [*rendered.manifests, *rendered.documents]
    if output is None:
        out.write("---\n".join(dump(d) for d in documents))
        return 0
    output.mkdir(parents=True, exist_ok=True)
    for document in documents:
        (output / domain.file_name(document)).write_text(dump(document), encoding="utf-8")
    err.write(f"wrote {len(documents)} file(s) to {output}\n")
    return 0
