"""deploy/base speaks TLS to NATS by default (issue 18, finding 5): nats-server gets a
certificate from a private cert-manager CA and requires TLS; every tailwire pod gets that CA
where TAILWIRE_NATS_TLS_CA_FILE points and a tls:// URL whose host the certificate names.
deploy/overlays/plain (components/nats-plain) is the documented opt-out, with nothing of
TLS left; the HA overlay authenticates its routes with the same CA.
(tests/shared/test_bus_tls.py and test_nats_cluster_routes.py show such servers and clients
working; this checks the wiring.)"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from tailwire.shared import permissions
from tests.deploy.test_deploy_manifests import DEPLOY, render

PLAIN = DEPLOY / "components" / "nats-plain"
CERT_FILE, KEY_FILE, CA_FILE = (
    "/etc/nats-tls/tls.crt",
    "/etc/nats-tls/tls.key",
    "/etc/nats-tls/ca.crt",
)
HA_ROUTES = tuple(
    f"nats://tailwire-nats-{i}.tailwire-nats.tailwire-system.svc:6222" for i in range(3)
)


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


def _generated(**options: Any) -> str:
    return permissions.render_nats_config(
        passwords={},
        password_from_env=True,
        auth_callout_issuer="$TAILWIRE_BUS_AUTH_ISSUER",
        **options,
    )


def test_the_nats_configs_are_generated_from_the_permissions_table() -> None:
    assert (DEPLOY / "base" / "nats.conf").read_text() == _generated(tls=(CERT_FILE, KEY_FILE)), (
        "stale: run `tailwire nats-config --auth-callout --tls-cert /etc/nats-tls/tls.crt "
        "--tls-key /etc/nats-tls/tls.key > deploy/base/nats.conf`"
    )
    assert (PLAIN / "nats.conf").read_text() == _generated(), (
        "stale: run `tailwire nats-config --auth-callout > deploy/components/nats-plain/nats.conf`"
    )
    ha = DEPLOY / "overlays" / "ha" / "nats.conf"
    assert ha.read_text() == _generated(
        tls=(CERT_FILE, KEY_FILE), tls_ca=CA_FILE, cluster_routes=HA_ROUTES
    ), "stale: run `tailwire nats-config --auth-callout --tls-... --cluster-routes ...`"


def test_every_tailwire_pod_verifies_the_server_the_certificate_names() -> None:
    objects = render("base")
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
    objects = render("base")
    config = _one(objects, "ConfigMap", "tailwire-nats-config")["data"]["nats.conf"]
    tls = re.search(r'tls \{ cert_file: "([^"]+)", key_file: "([^"]+)" \}', config)
    assert tls is not None, config
    nats = _one(objects, "StatefulSet", "tailwire-nats")
    for path in tls.groups():
        volume = _volume_at(nats, str(PurePosixPath(path).parent))
        assert volume["secret"]["secretName"] == "tailwire-nats-tls"


def test_the_ha_certificate_names_each_server_and_serves_its_routes() -> None:
    objects = render("overlays/ha")
    cert = _one(objects, "Certificate", "tailwire-nats-tls")["spec"]
    for route in HA_ROUTES:
        host = urlparse(route).hostname
        assert host is not None
        assert any(
            name == host or (name.startswith("*.") and host.split(".", 1)[1] == name[2:])
            for name in cert["dnsNames"]
        ), host
    assert set(cert["usages"]) == {"server auth", "client auth"}
    config = _one(objects, "ConfigMap", "tailwire-nats-config")["data"]["nats.conf"]
    assert f'ca_file: "{CA_FILE}", verify: true' in config


def test_the_plain_overlay_leaves_nothing_of_tls() -> None:
    objects = render("overlays/plain")
    settings = _one(objects, "ConfigMap", "tailwire-settings")["data"]
    assert urlparse(settings["TAILWIRE_NATS_URL"]).scheme == "nats"
    assert settings["TAILWIRE_NATS_TLS_CA_FILE"] == ""
    assert not [o for o in objects if o["apiVersion"].startswith("cert-manager.io/")]
    text = str(objects)
    assert "tailwire-nats-tls" not in text
    assert "nats-ca" not in text
    config = _one(objects, "ConfigMap", "tailwire-nats-config")["data"]["nats.conf"]
    assert "tls {" not in config
