"""`tailwire`: run a service, validate manifests, generate CRDs, print the version."""

from __future__ import annotations

import asyncio
import importlib.metadata
import sys
from pathlib import Path
from typing import Annotated

import pydantic
import typer

from tailwire.cli import asyncapi as asyncapi_doc
from tailwire.cli import demo as demo_script
from tailwire.cli import dev as dev_script
from tailwire.cli import rendering, running, validating
from tailwire.services.keyminter import buscredentials
from tailwire.shared import errors, permissions, settings

app = typer.Typer(
    name="tailwire",
    help="Kubernetes workloads on a Tailscale tailnet: egress groups, Gateway API ingress, "
    "split-horizon DNS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print the installed tailwire version."""
    typer.echo(importlib.metadata.version("tailwire"))


@app.command()
def run(
    service: Annotated[running.ServiceName, typer.Argument(help="The service to run.")],
    node: Annotated[
        str | None,
        typer.Option("--node", help="nodeagent: this node's name (else TAILWIRE_NODE_NAME)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="nodeagent: print the netlink/nftables changes only."),
    ] = False,
) -> None:
    """Run one service until SIGTERM/SIGINT (settings from TAILWIRE_* variables)."""
    try:
        asyncio.run(running.run_service(service, node=node, dry_run=dry_run))
    except errors.ConfigurationError as exc:
        typer.echo(f"tailwire run {service}: {exc}", err=True)
        raise typer.Exit(2) from None
    except pydantic.ValidationError as exc:
        typer.echo(f"tailwire run {service}: {settings.describe_error(exc)}", err=True)
        raise typer.Exit(2) from None


@app.command()
def validate(
    files: Annotated[
        list[str],
        typer.Option("--file", "-f", help="Manifest file; '-' reads standard input."),
    ],
    more: Annotated[
        list[str] | None, typer.Argument(help="More files (`-f a.yaml b.yaml` works too).")
    ] = None,
) -> None:
    """Validate manifests; one line per problem: <kind>/<name>: <field>: <message>."""
    code = validating.validate_files([*files, *(more or [])], out=sys.stdout, err=sys.stderr)
    raise typer.Exit(code)


@app.command()
def crds(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Directory to write the CRD files to.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the files in --output are stale.")
    ] = False,
) -> None:
    """Print (or write) the CustomResourceDefinitions generated from the models."""
    raise typer.Exit(validating.write_crds(output=output, check=check, out=sys.stdout))


@app.command()
def asyncapi(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (docs/asyncapi.yaml).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the file in --output is stale.")
    ] = False,
) -> None:
    """Print (or write) the AsyncAPI 3.0 document of every subject the services use."""
    raise typer.Exit(asyncapi_doc.write(output=output, check=check, out=sys.stdout))


@app.command()
def render(
    files: Annotated[
        list[str], typer.Option("--file", "-f", help="Custom resources; '-' reads stdin.")
    ],
    cluster: Annotated[
        list[str] | None,
        typer.Option("--cluster", help="Namespaces, Nodes and Pods (kubectl get -o yaml)."),
    ] = None,
    cluster_cidrs: Annotated[
        str | None, typer.Option("--cluster-cidrs", help="Comma-separated cluster CIDRs.")
    ] = None,
    cluster_name: Annotated[
        str | None,
        typer.Option(
            "--cluster-name",
            help="Part of gateway hostnames (TAILWIRE_CLUSTER_NAME); distinct per cluster "
            "sharing a tailnet.",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Directory: one file per object.")
    ] = None,
) -> None:
    """Print every manifest and node plan the renderer would produce (deterministic)."""
    cidrs = [c.strip() for c in cluster_cidrs.split(",") if c.strip()] if cluster_cidrs else None
    code = rendering.render_files(
        resources=files,
        cluster=cluster or [],
        cluster_cidrs=cidrs,
        cluster_name=cluster_name,
        output=output,
        out=sys.stdout,
        err=sys.stderr,
    )
    raise typer.Exit(code)


AUTH_ISSUER_ENV = "TAILWIRE_BUS_AUTH_ISSUER"


@app.command("nats-config")
def nats_config(
    nodes: Annotated[
        str,
        typer.Option(
            "--nodes",
            help="Comma-separated node names: one confined nodeagent user each "
            "(default: one shared `nodeagent` user, not confined to a node).",
        ),
    ] = "",
    store_dir: Annotated[str, typer.Option(help="JetStream store directory.")] = "/data/jetstream",
    cluster_routes: Annotated[
        str, typer.Option(help="Comma-separated route URLs of a NATS cluster (HA).")
    ] = "",
    auth_callout: Annotated[
        bool,
        typer.Option(
            "--auth-callout",
            help="Nodeagents get their node's permissions from the keyminter's auth callout "
            f"(issuer public key from ${AUTH_ISSUER_ENV}); see `tailwire nats-issuer`.",
        ),
    ] = False,
    tls_cert: Annotated[
        str | None,
        typer.Option(
            "--tls-cert",
            help="Server certificate (PEM) path as nats-server sees it: clients must use TLS "
            "(tls:// and TAILWIRE_NATS_TLS_CA_FILE). Needs --tls-key.",
        ),
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option("--tls-key", help="The certificate's private key (PEM) path.")
    ] = None,
    tls_ca: Annotated[
        str | None,
        typer.Option(
            "--tls-ca",
            help="The bus CA (PEM) path: with --cluster-routes, a route is accepted only "
            "from a server whose certificate it signed (mutual TLS).",
        ),
    ] = None,
) -> None:
    """Print a nats-server config: JetStream and one user per service (passwords from env).

    Each password is read by nats-server from `TAILWIRE_NATS_PASSWORD_<USER>`, so the config
    can live in a ConfigMap while the passwords stay in a Secret.
    """
    node_names = tuple(n.strip() for n in nodes.split(",") if n.strip())
    if (tls_cert is None) != (tls_key is None):
        typer.echo("--tls-cert and --tls-key go together", err=True)
        raise typer.Exit(2)
    try:
        config = permissions.render_nats_config(
            passwords={},
            nodes=node_names,
            store_dir=store_dir,
            password_from_env=True,
            cluster_routes=tuple(r.strip() for r in cluster_routes.split(",") if r.strip()),
            auth_callout_issuer=f"${AUTH_ISSUER_ENV}" if auth_callout else None,
            tls=(tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None,
            tls_ca=tls_ca,
        )
    except ValueError as exc:
        typer.echo(f"--cluster-routes: {exc} (give --tls-cert, --tls-key and --tls-ca)", err=True)
        raise typer.Exit(2) from None
    typer.echo(config, nl=False)


@app.command("nats-issuer")
def nats_issuer() -> None:
    """Print a new auth-callout issuer: the seed for the keyminter and the public key for
    nats-server, as the two keys of the `tailwire-nats-users` Secret."""
    seed, public = buscredentials.new_issuer()
    typer.echo(f"bus-auth-issuer={public}")
    typer.echo(f"bus-auth-issuer-seed={seed}")


@app.command()
def demo(
    simulated: Annotated[
        bool,
        typer.Option(
            "--simulated",
            help="Gateways with the simulated tailnet peer and the control-API stand-in, "
            "even where the real tailnet (Headscale, tailscaled) could run.",
        ),
    ] = False,
) -> None:
    """Run the embedded demo: nats-server, every service, a member pod pinging a tailnet
    device through a real tailscaled gateway joined to a local Headscale (when root and the
    peers are built, else a simulated peer); then clean up."""
    raise typer.Exit(demo_script.run_demo(simulated=simulated))


@app.command()
def dev(
    kubeconfig: Annotated[
        Path | None,
        typer.Option("--kubeconfig", help="Use this cluster instead of the emulated API."),
    ] = None,
    nodes: Annotated[
        str | None,
        typer.Option(
            "--nodes",
            help="Comma-separated node names to run a nodeagent for here "
            "(default: node-a,node-b on the emulator, none with --kubeconfig).",
        ),
    ] = None,
) -> None:
    """Run the whole system with a live table of groups, members, plans, acks and DNS
    records until Ctrl-C (control API: Tailscale when TAILWIRE_TAILSCALE_OAUTH_CLIENT_ID and
    _SECRET are set, else a local stand-in)."""
    node_names = None if nodes is None else tuple(n.strip() for n in nodes.split(",") if n.strip())
    raise typer.Exit(dev_script.run_dev(kubeconfig=kubeconfig, nodes_=node_names))


def main() -> None:
    app()
