"""deploy/components/nats-tls (through deploy/overlays/tls): nats-server gets a certificate
from a private cert-manager CA and requires TLS; every tailwire pod gets that CA where
TAILWIRE_NATS_TLS_CA_FILE points and a tls:// URL whose host the certificate names.
(test_bus_tls.py shows such a server and client working; this checks the wiring.)"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from tailwire.shared import permissions
from tests.deploy.test_deploy_manifests import DEPLOY, render

COMPONENT = DEPLOY / "components" / "nats-tls"
CERT_FILE, KEY_FILE = "/etc/nats-tls/tls.crt", "/etc/nats-tls/tls.key"


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name)]
    return found


def _volume_at(workload: dict[str, Any], path: str) -> dict[str, Any]:
    """The pod volume mounted at `path` in the workload's first container."""
    pod = workload["spec"]["template"]["spec"]
    [name] = [m["name"] for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == path]
    volumes: list[dict[str, Any]] = pod["volumes"]
    [volume] = [v for v in volumes if v["name"] == name]
    return volume


def test_the_component_nats_config_is_generated_with_tls() -> None:
    assert (COMPONENT / "nats.conf").read_text() == permissions.render_nats_config(
        passwords={},
        password_from_env=True,
        auth_callout_issuer="$TAILWIRE_BUS_AUTH_ISSUER",
        tls=(CERT_FILE, KEY_FILE),
    ), (
        "stale: run `tailwire nats-config --auth-callout --tls-cert /etc/nats-tls/tls.crt "
        "--tls-key /etc/nats-tls/tls.key > deploy/components/nats-tls/nats.conf`"
    )


def test_every_tailwire_pod_verifies_the_server_the_certificate_names() -> None:
    objects = render("overlays/tls")
    settings = _one(objects, "ConfigMap", "tailwire-settings")["data"]
    url = urlparse(settings["TAILWIRE_NATS_URL"])
    assert url.scheme == "tls"
    ca_file = PurePosixPath(settings["TAILWIRE_NATS_TLS_CA_FILE"])

    server_cert = _one(objects, "Certificate", "tailwire-nats-tls")["spec"]
    assert url.hostname in server_cert["dnsNames"]
    assert server_cert["secretName"] == "tailwire-nats-tls"
    issuer = _one(objects, "Issuer", server_cert["issuerRef"]["name"])
    ca_cert = _one(objects, "Certificate", "tailwire-bus-ca")["spec"]
    assert issuer["spec"]["ca"]["secretName"] == ca_cert["secretName"]
    assert ca_cert["isCA"] is True

    workloads = [
        o
        for o in objects
        if o["kind"] in ("Deployment", "DaemonSet")
        and o["metadata"]["namespace"] == "tailwire-system"
    ]
    assert {w["metadata"]["name"] for w in workloads} == {
        "tailwire-watcher",
        "tailwire-keyminter",
        "tailwire-renderer",
        "tailwire-dnsupdater",
        "tailwire-nodeagent",
    }
    for workload in workloads:
        volume = _volume_at(workload, str(ca_file.parent))
        assert volume["secret"]["secretName"] == "tailwire-nats-tls"
        assert {"key": "ca.crt", "path": ca_file.name} in volume["secret"]["items"]
        env_from = workload["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert any(
            e.get("configMapRef", {}).get("name", "").startswith("tailwire-settings")
            for e in env_from
        )


def test_nats_server_finds_its_certificate_where_its_config_says() -> None:
    objects = render("overlays/tls")
    config = _one(objects, "ConfigMap", "tailwire-nats-config")["data"]["nats.conf"]
    tls = re.search(r'tls \{ cert_file: "([^"]+)", key_file: "([^"]+)" \}', config)
    assert tls is not None, config
    nats = _one(objects, "StatefulSet", "tailwire-nats")
    for path in tls.groups():
        volume = _volume_at(nats, str(PurePosixPath(path).parent))
        assert volume["secret"]["secretName"] == "tailwire-nats-tls"
