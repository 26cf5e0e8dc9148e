"""A real Kubernetes API for the tests: kube-apiserver and etcd from `testing/peers/kube`.

The envtest way, on loopback only: an embedded etcd (`testing/peers/kube/etcd`) and the
kube-apiserver of the pinned release (`peers.KUBERNETES_VERSION`), both on free ports, with
what a real cluster enforces and an emulator does not:

- TLS: a serving certificate for 127.0.0.1 from a throwaway CA (`ca_path`);
- authentication by client certificate (`--client-ca-file`, a second throwaway CA: CN is the
  user, O the group) and by ServiceAccount token (`--service-account-issuer`, signing and
  verifying key generated here; tokens from the TokenRequest API);
- `--authorization-mode=RBAC`, so `deploy/base`'s Roles are what a ServiceAccount may do;
- the default admission plugins plus OwnerReferencesPermissionEnforcement (a blocking owner
  reference needs `update` on the owner's finalizers, as in hardened clusters), minus
  ServiceAccount (no controller-manager runs here to create `default` accounts: envtest
  does the same).

No controller-manager, scheduler or kubelet: nothing garbage-collects, finishes a namespace
deletion or schedules a pod. `KubeAPIServer.kubeconfig_path` is the admin's (O=system:masters);
`user_kubeconfig(name, group=...)` gives any user a kubeconfig, and
`service_account_kubeconfig(namespace, name)` one with a bound token of that ServiceAccount.
`admin` is a synchronous HTTP client for quick reads and writes (`request`, `get`, `apply`:
server-side, strict field validation); `kubectl(...)` runs the built kubectl against the
server; `kustomize(path)` renders with it and `install_crds(server)` installs deploy/crds and
waits until their objects can be listed (`install_upstream_crds(server)` the same for the
Gateway API, Envoy Gateway and cert-manager CRDs `make peers` fetched). Everything lives in
a temp dir removed by `close()`, which stops both processes (SIGTERM, then SIGKILL); the end
of each log is kept in `logs` for failure messages. Ready in about 3 s on two cores
(`started_in`).

Must not: listen beyond 127.0.0.1, touch `~/.kube` or the process-wide kubernetes-asyncio
configuration, or leave a process or a file behind.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import trustme
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes_asyncio import client

from tailwire.testing import natsserver, peers
from tailwire.testing.kubeapi import kubeconfigs
from tailwire.testing.system import processes

JSON = dict[str, Any]
CRDS = peers.ROOT / "deploy" / "crds"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
ADMIN_USER = "tailwire-test-admin"
ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/12"
FIELD_MANAGER = "tailwire-tests"


class KubeAPIServerError(RuntimeError):
    """etcd or kube-apiserver did not start, or a request failed; carries what they said."""


class KubeAPIServer:
    """One etcd + kube-apiserver pair on loopback. `start()`, then `close()` (or `with`)."""

    def __init__(self, *, workdir: Path | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tailwire-kube-"))
        self.port = natsserver.free_port()
        self.etcd_port = natsserver.free_port()
        self.etcd_peer_port = natsserver.free_port()
        self._serving_ca = trustme.CA(organization_name="tailwire-test serving CA")
        self._client_ca = trustme.CA(organization_name="tailwire-test client CA")
        self.ca_path = self.workdir / "pki" / "serving-ca.crt"
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._admin: httpx.Client | None = None
        self.kubeconfig_path = self.workdir / "kubeconfigs" / "admin"
        self.started_in: float | None = None
        self._pems = 0
        # After close(): the end of each process's log (name -> text).
        self.logs: dict[str, str] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def etcd_log(self) -> Path:
        return self.workdir / "logs" / "etcd.log"

    @property
    def apiserver_log(self) -> Path:
        return self.workdir / "logs" / "kube-apiserver.log"

    def start(self, *, within: float = 90.0) -> KubeAPIServer:
        """Start etcd, then kube-apiserver; return once /readyz answers ok."""
        etcd_binary = peers.binary("etcd")
        apiserver_binary = peers.binary("kube-apiserver")
        peers.binary("kubectl")  # the tests render and apply with it: fail early if missing
        started = time.monotonic()
        pki = self._write_pki()
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        etcd = [
            etcd_binary,
            "-listen", f"http://127.0.0.1:{self.etcd_port}",
            "-peer", f"http://127.0.0.1:{self.etcd_peer_port}",
            "-data-dir", str(self.workdir / "etcd"),
        ]  # fmt: skip
        self._etcd = _spawn(etcd, log=self.etcd_log)
        self._apiserver = _spawn(
            [
                apiserver_binary,
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'serving.crt'}",
                f"--tls-private-key-file={pki / 'serving.key'}",
                f"--client-ca-file={pki / 'client-ca.crt'}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--api-audiences={ISSUER}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
            log=self.apiserver_log,
        )
        self.write_kubeconfig(
            self.kubeconfig_path, credentials=self._client_credentials(ADMIN_USER, "system:masters")
        )
        self._admin = self._http(self._client_credentials(ADMIN_USER, "system:masters"))
        self._wait_ready(within=within)
        self.started_in = time.monotonic() - started
        return self

    def _write_pki(self) -> Path:
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        self._serving_ca.cert_pem.write_to_path(str(self.ca_path))
        serving = self._serving_ca.issue_cert(
            "127.0.0.1", "localhost", common_name="kube-apiserver"
        )
        serving.cert_chain_pems[0].write_to_path(str(pki / "serving.crt"))
        serving.private_key_pem.write_to_path(str(pki / "serving.key"))
        self._client_ca.cert_pem.write_to_path(str(pki / "client-ca.crt"))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (pki / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (pki / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return pki

    def _wait_ready(self, *, within: float) -> None:
        assert self._admin is not None
        deadline = time.monotonic() + within
        last = ""
        while time.monotonic() < deadline:
            for name, process in (("etcd", self._etcd), ("kube-apiserver", self._apiserver)):
                if process is not None and process.poll() is not None:
                    raise KubeAPIServerError(
                        f"{name} exited with {process.returncode}:\n{self.log_tail(name)}"
                    )
            try:
                response = self._admin.get("/readyz")
                if response.status_code == 200:
                    return
                last = f"/readyz {response.status_code}: {response.text[-500:]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise KubeAPIServerError(
            f"kube-apiserver not ready within {within} s ({last}):\n"
            f"{self.log_tail('kube-apiserver')}"
        )

    def log_tail(self, name: str = "kube-apiserver", lines: int = 40) -> str:
        if name in self.logs:
            return self.logs[name]
        path = self.apiserver_log if name == "kube-apiserver" else self.etcd_log
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        """Stop kube-apiserver, then etcd; keep their log tails; remove the temp dir."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        for name, process in (("kube-apiserver", self._apiserver), ("etcd", self._etcd)):
            if process is not None:
                _stop(process)
                self.logs[name] = self.log_tail(name)
        self._apiserver = self._etcd = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KubeAPIServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- identities --------------------------------------------------------------------------

    def _client_credentials(self, user: str, group: str | None) -> JSON:
        leaf = self._client_ca.issue_cert(
            "client.kube.test", common_name=user, organization_name=group
        )
        return {
            "client-certificate-data": _b64(leaf.cert_chain_pems[0].bytes()),
            "client-key-data": _b64(leaf.private_key_pem.bytes()),
        }

    def write_kubeconfig(self, path: Path, *, credentials: Mapping[str, str]) -> Path:
        """A kubeconfig for this server with the given `users[].user` fields."""
        name = "tailwire-kube-apiserver"
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": _b64(self._serving_ca.cert_pem.bytes()),
                    },
                }
            ],
            "users": [{"name": name, "user": dict(credentials)}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "preferences": {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        path.chmod(0o600)
        return path

    def user_kubeconfig(self, user: str, *, group: str | None = None) -> Path:
        """A kubeconfig authenticating as `user` (client certificate; O=`group` if given)."""
        path = self.workdir / "kubeconfigs" / f"user-{user.replace(':', '-')}"
        return self.write_kubeconfig(path, credentials=self._client_credentials(user, group))

    def service_account_token(self, namespace: str, name: str, *, seconds: int = 3600) -> str:
        """A bound token of ServiceAccount `namespace/name` from the TokenRequest API."""
        answer = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": [ISSUER], "expirationSeconds": seconds},
            },
        )
        return str(answer["status"]["token"])

    def service_account_kubeconfig(self, namespace: str, name: str, *, seconds: int = 3600) -> Path:
        """A kubeconfig acting as ServiceAccount `namespace/name` (bearer token, as a pod)."""
        token = self.service_account_token(namespace, name, seconds=seconds)
        path = self.workdir / "kubeconfigs" / f"sa-{namespace}-{name}"
        return self.write_kubeconfig(path, credentials={"token": token})

    def http(self, kubeconfig: Path | None = None) -> httpx.Client:
        """A synchronous client with the credentials of `kubeconfig` (default: the admin's);
        the caller closes it."""
        document = yaml.safe_load((kubeconfig or self.kubeconfig_path).read_text())
        return self._http(document["users"][0]["user"])

    def _http(self, credentials: Mapping[str, str]) -> httpx.Client:
        headers = {"Accept": "application/json"}
        cert: tuple[str, str] | None = None
        if "token" in credentials:
            headers["Authorization"] = f"Bearer {credentials['token']}"
        else:
            self._pems += 1
            pem = self.workdir / "pki" / "clients" / f"client-{self._pems}"
            pem.parent.mkdir(parents=True, exist_ok=True)
            pem.with_suffix(".crt").write_bytes(
                base64.b64decode(credentials["client-certificate-data"])
            )
            pem.with_suffix(".key").write_bytes(base64.b64decode(credentials["client-key-data"]))
            cert = (str(pem.with_suffix(".crt")), str(pem.with_suffix(".key")))
        context = ssl.create_default_context()
        self._serving_ca.configure_trust(context)
        if cert is not None:
            context.load_cert_chain(*cert)
        return httpx.Client(base_url=self.url, verify=context, headers=headers, timeout=30.0)

    async def api_client(self) -> client.ApiClient:
        """A kubernetes-asyncio client as the admin (the `kubeapi.Cluster` contract)."""
        return await kubeconfigs.new_api_client(self.kubeconfig_path)

    # --- requests ----------------------------------------------------------------------------

    @property
    def admin(self) -> httpx.Client:
        if self._admin is None:
            raise KubeAPIServerError("the server is not running")
        return self._admin

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        as_: httpx.Client | None = None,
        ok: Sequence[int] = (200, 201, 202),
    ) -> JSON:
        """One API call as the admin (or `as_`); its JSON answer; KubeAPIServerError when the
        status is not in `ok`."""
        http = as_ or self.admin
        content = None if body is None else json.dumps(body).encode()
        response = http.request(
            method,
            path,
            content=content,
            params=dict(params or {}),
            headers={"Content-Type": content_type} if content is not None else None,
        )
        if response.status_code not in ok:
            raise KubeAPIServerError(
                f"{method} {path}: {response.status_code} {response.text[:1000]}"
            )
        try:
            answer: JSON = response.json()
        except ValueError:
            answer = {}
        return answer

    def get(self, path: str, *, as_: httpx.Client | None = None) -> JSON | None:
        """The object at `path`, None when it does not exist."""
        response = (as_ or self.admin).get(path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise KubeAPIServerError(f"GET {path}: {response.status_code} {response.text[:1000]}")
        found: JSON = response.json()
        return found

    def apply(self, manifest: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER) -> JSON:
        """Server-side apply of one object as the admin (created when missing)."""
        return self.request(
            "PATCH",
            object_path(manifest),
            body=manifest,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": field_manager, "force": "true", "fieldValidation": "Strict"},
        )

    def create_namespace(self, name: str, *, labels: Mapping[str, str] | None = None) -> JSON:
        return self.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": dict(labels or {})},
            }
        )

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input_: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """The built kubectl (`peers.binary("kubectl")`) against this server."""
        result = subprocess.run(
            [peers.binary("kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig_path}", *args],
            input=input_,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.workdir)},
        )
        if check and result.returncode != 0:
            raise KubeAPIServerError(
                f"kubectl {' '.join(args)}: exit {result.returncode}\n{result.stderr}"
            )
        return result

    def wait_established(self, crd_names: Sequence[str], *, within: float = 30.0) -> None:
        """Until every named CRD is Established and its objects can be listed: right after
        establishment the server answers 429 "storage is (re)initializing" for a moment."""
        deadline = time.monotonic() + within
        pending = list(crd_names)
        while pending:
            found = self.get(f"{CRD_PATH}/{pending[0]}") or {}
            conditions = (found.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                spec = found["spec"]
                version = next(v["name"] for v in spec["versions"] if v.get("storage"))
                listing = f"/apis/{spec['group']}/{version}/{spec['names']['plural']}"
                if self.admin.get(listing, params={"limit": "1"}).status_code == 200:
                    pending.pop(0)
                    continue
            if time.monotonic() >= deadline:
                raise KubeAPIServerError(f"CRD {pending[0]} not served within {within} s")
            time.sleep(0.05)


# --- manifests ---------------------------------------------------------------------------------


def kustomize(path: Path) -> list[JSON]:
    """`kubectl kustomize path` with the built kubectl: the documents a user would apply."""
    result = subprocess.run(
        [peers.binary("kubectl"), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise KubeAPIServerError(f"kubectl kustomize {path}: {result.stderr}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def install_crds(server: KubeAPIServer, path: Path = CRDS) -> list[str]:
    """Apply the CRDs of `path` (deploy/crds by default) and wait until they are served;
    their names."""
    documents = kustomize(path)
    for document in documents:
        server.apply(document)
    names = [d["metadata"]["name"] for d in documents if d["kind"] == "CustomResourceDefinition"]
    server.wait_established(names)
    return names


def install_upstream_crds(
    server: KubeAPIServer, projects: Sequence[str] = tuple(peers.CRD_MODULES)
) -> list[str]:
    """Apply the upstream CRDs `make peers` copied out of their pinned Go modules (Gateway
    API standard channel, Envoy Gateway, cert-manager: `peers.CRD_MODULES`) and wait until
    they are served; their names. PeerMissing when they were not fetched."""
    names = []
    for project in projects:
        for path in peers.crds(project):
            for document in yaml.safe_load_all(path.read_text()):
                if document and document.get("kind") == "CustomResourceDefinition":
                    server.apply(document)
                    names.append(document["metadata"]["name"])
    server.wait_established(names)
    return names


# --- paths -------------------------------------------------------------------------------------

_CLUSTER_SCOPED = {
    "Namespace",
    "Node",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "EgressGroup",
    "TailscaleTailnet",
    "GatewayClass",
    "PersistentVolume",
    "StorageClass",
}
_PLURALS = {"EnvoyProxy": "envoyproxies", "GatewayClass": "gatewayclasses"}


def plural(kind: str) -> str:
    if kind in _PLURALS:
        return _PLURALS[kind]
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        return lower[:-1] + "ies"
    if lower.endswith("s"):
        return lower + "es"
    return lower + "s"


def object_path(manifest: Mapping[str, Any]) -> str:
    """The REST path of one object (the kinds tailwire and deploy/ use)."""
    api_version, kind = str(manifest["apiVersion"]), str(manifest["kind"])
    metadata = manifest.get("metadata") or {}
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    namespace = metadata.get("namespace") or (None if kind in _CLUSTER_SCOPED else "default")
    scope = f"/namespaces/{namespace}" if namespace and kind not in _CLUSTER_SCOPED else ""
    return f"{base}{scope}/{plural(kind)}/{metadata['name']}"


# --- processes ---------------------------------------------------------------------------------


def _spawn(argv: Sequence[str], *, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            preexec_fn=processes.die_with_parent,
        )


def _stop(process: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@contextlib.contextmanager
def running(*, within: float = 90.0) -> Iterator[KubeAPIServer]:
    """`with kubeapiserver.running() as server:` started, then always closed."""
    server = KubeAPIServer()
    try:
        yield server.start(within=within)
    finally:
        server.close()
