"""The running emulator: an HTTP server on 127.0.0.1 and the hand a test holds it by.

Responsible for: starting the kmock handler on a free port with aiohttp's
low-level server (not ``kmock.Server``, whose DNS interceptor patches
aiohttp's resolver process-wide), writing its kubeconfig, seeding the
namespaces K3s starts with and a CRD object for every served custom
resource, and :class:`KubeAPI`: the test-side API that writes to storage
directly (create, patch, patch_status, delete), reads it (get, objects), and
pulls the levers a real cluster has but tests cannot reach (compact the
history, 410 the next watch, send bookmarks, drop watch connections,
install and remove CRDs), plus a typed log of the requests served.

Must not: implement API semantics (storage, watching and handling do), or
sleep: waiting is on conditions (:meth:`KubeAPI.wait_for_watchers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
from kubernetes_asyncio import client

from . import crds, handling, journal, kubeconfigs, resources, routing, statuses, storage

JSON = dict[str, Any]
TEST_MANAGER = "kubeapi-test"  # the field manager of writes made directly by tests
K3S_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RequestRecord:
    """One request as an audit log would show it."""

    method: str
    path: str
    verb: str | None  # list, watch, get, create, update, patch, delete, deletecollection
    group: str | None
    resource: str | None  # the plural, e.g. "pods"
    namespace: str | None  # None: cluster-wide (or a cluster-scoped resource)
    name: str | None
    subresource: str | None
    params: Mapping[str, str]
    user_agent: str


class KubeAPI:
    """A served emulator. Build it with :func:`serve`."""

    def __init__(self, *, handler: handling.Handler, url: str, kubeconfig_path: Path) -> None:
        self.kmock = handler  # kmock's DSL for fault injection: api.kmock[...] << 503
        self.store = handler.store
        self.catalog = handler.store.catalog
        self.url = url
        self._kubeconfig_path = kubeconfig_path

    @property
    def kubeconfig_path(self) -> Path:
        return self._kubeconfig_path

    async def api_client(self) -> client.ApiClient:
        """A new client for this server; the caller closes it (``async with``)."""
        return await kubeconfigs.new_api_client(self._kubeconfig_path)

    def kubeconfig(self, path: Path) -> Path:
        """Write another kubeconfig for this server at ``path`` (e.g. for a subprocess)."""
        return kubeconfigs.write_kubeconfig(path, server=self.url)

    def issue_token(self, **kwargs: Any) -> str:
        """A ServiceAccount token TokenReview will recognise (see `tokens.Tokens.issue`)."""
        return self.kmock.tokens.issue(**kwargs)

    # --- reading and writing as a test's hand on etcd -----------------------------------------

    def find(self, resource: str | resources.ResourceSpec) -> resources.ResourceSpec:
        return self.catalog.find(resource)

    @property
    def resource_version(self) -> str:
        return str(self.store.resource_version)

    def create(self, obj: Mapping[str, Any]) -> JSON:
        """Store ``obj`` as is (status included), by its apiVersion and kind.

        Namespaced objects without a namespace go to ``default``, as with kubectl.
        """
        spec = self.catalog.by_kind(api_version=obj.get("apiVersion", ""), kind=obj.get("kind", ""))
        if spec is None:
            raise LookupError(f"not served: {obj.get('apiVersion')} {obj.get('kind')}")
        namespace = (obj.get("metadata") or {}).get("namespace") or "default"
        return self.store.create(
            spec,
            obj,
            namespace=namespace if spec.namespaced else None,
            manager=TEST_MANAGER,
            client=False,
        )

    def _where(
        self, resource: str | resources.ResourceSpec, namespace: str | None
    ) -> tuple[resources.ResourceSpec, str | None]:
        # Like kubectl: a namespaced resource without a namespace means "default".
        spec = self.find(resource)
        return spec, (namespace or "default") if spec.namespaced else None

    def get(
        self, resource: str | resources.ResourceSpec, /, *, name: str, namespace: str | None = None
    ) -> JSON | None:
        spec, namespace = self._where(resource, namespace)
        try:
            return self.store.get(spec, namespace=namespace, name=name)
        except statuses.StatusError:
            return None

    def objects(
        self, resource: str | resources.ResourceSpec, /, *, namespace: str | None = None
    ) -> list[JSON]:
        """All objects of ``resource``, in every namespace unless one is given."""
        return self.store.select(self.find(resource), namespace=namespace)

    def patch(
        self,
        resource: str | resources.ResourceSpec,
        /,
        *,
        name: str,
        namespace: str | None = None,
        patch: Mapping[str, Any],
    ) -> JSON:
        """A merge patch over the whole object, status included."""
        spec, namespace = self._where(resource, namespace)
        obj, _ = self.store.patch(
            spec,
            patch,
            namespace=namespace,
            name=name,
            patch_type="merge",
            manager=TEST_MANAGER,
            client=False,
        )
        return obj

    def patch_status(
        self,
        resource: str | resources.ResourceSpec,
        /,
        *,
        name: str,
        namespace: str | None = None,
        status: Mapping[str, Any],
    ) -> JSON:
        """A merge patch of ``status`` through the status subresource, as a controller writes it."""
        spec, namespace = self._where(resource, namespace)
        obj, _ = self.store.patch(
            spec,
            {"status": dict(status)},
            namespace=namespace,
            name=name,
            patch_type="merge",
            subresource="status",
            manager=TEST_MANAGER,
        )
        return obj

    def delete(
        self,
        resource: str | resources.ResourceSpec,
        /,
        *,
        name: str,
        namespace: str | None = None,
        force: bool = False,
    ) -> JSON | None:
        """Delete as the API does (finalizers hold it; returns the held object), or ``force``.

        Returns None once the object is gone.
        """
        spec, namespace = self._where(resource, namespace)
        if force and self.get(spec, name=name, namespace=namespace) is not None:
            self.patch(
                spec, name=name, namespace=namespace, patch={"metadata": {"finalizers": None}}
            )
        if self.get(spec, name=name, namespace=namespace) is not None:
            self.store.delete(spec, namespace=namespace, name=name)
        return self.get(spec, name=name, namespace=namespace)

    # --- the levers of a real cluster ---------------------------------------------------------

    def install(self, spec: resources.ResourceSpec) -> None:
        """Serve a resource from now on; for a custom one, by creating its CRD object."""
        if not spec.custom:
            self.catalog.install(spec)
            return
        crd = crds.to_crd(spec)
        if self.get(resources.CRD, name=crds.name_of(spec)) is None:
            self.store.create(resources.CRD, crd, manager=TEST_MANAGER, client=False)

    def uninstall(self, resource: str | resources.ResourceSpec) -> None:
        """Stop serving: objects are deleted (DELETED events), watches end, then 404."""
        spec = self.find(resource)
        if spec.custom and self.get(resources.CRD, name=crds.name_of(spec)) is not None:
            self.delete(resources.CRD, name=crds.name_of(spec), force=True)
        else:
            self.store.drop_resource(spec)
            self.catalog.uninstall(spec)

    def expire_history(self) -> None:
        """Compact the history: a watch from any version before now gets 410 Gone."""
        self.store.expire_history()

    def force_gone_next_watch(self, resource: str | resources.ResourceSpec) -> None:
        """The next watch of ``resource`` gets a 410 Gone ERROR event, whatever its version."""
        self.store.journal.force_gone(self.find(resource))

    def send_bookmarks(self, resource: str | resources.ResourceSpec | None = None) -> int:
        """A BOOKMARK now to every open watch that allowed bookmarks; returns the watch count."""
        spec = None if resource is None else self.find(resource)
        rv = self.store.resource_version
        return self.store.journal.signal(lambda: journal.Bookmark(rv), spec=spec)

    def disconnect_watches(self, resource: str | resources.ResourceSpec | None = None) -> int:
        """End open watch responses (as an API server restart does); returns how many."""
        spec = None if resource is None else self.find(resource)
        return self.store.journal.signal(journal.Disconnect, spec=spec)

    def watchers(self, resource: str | resources.ResourceSpec) -> int:
        return len(self.store.journal.subscriptions(self.find(resource)))

    async def wait_for_watchers(
        self, resource: str | resources.ResourceSpec, /, *, count: int = 1, within: float = 5.0
    ) -> None:
        """Wait until ``count`` watches of ``resource`` are open (e.g. the service has started)."""
        spec = self.find(resource)
        async with asyncio.timeout(within):
            while len(self.store.journal.subscriptions(spec)) < count:
                await self.store.journal.changed()

    @property
    def requests(self) -> list[RequestRecord]:
        return [_record(request) for request in self.kmock]


def _record(request: kmock.Request) -> RequestRecord:
    route = routing.parse(request.url.path)
    resource = route.kind == "resource"
    user_agent = next((v for k, v in request.headers.items() if k.lower() == "user-agent"), "")
    return RequestRecord(
        method=request.method.value,
        path=request.url.path,
        verb=routing.verb(request.method.value, route, request.params) if resource else None,
        group=route.group if resource else None,
        resource=route.plural,
        namespace=route.namespace,
        name=route.name,
        subresource=route.subresource,
        params=dict(request.params),
        user_agent=user_agent,
    )


@contextlib.asynccontextmanager
async def serve(
    *,
    served: Iterable[resources.ResourceSpec] = resources.DEFAULT,
    namespaces: Iterable[str] = K3S_NAMESPACES,
    history_size: int = 1000,
    bookmark_interval: float = 60.0,
    clock: storage.Clock = storage.utcnow,
    kubeconfig_path: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    strict: bool = True,
    request_log_limit: int | None = None,
) -> AsyncIterator[KubeAPI]:
    """Serve the emulator over HTTP until the block exits.

    ``strict``: an exception inside the emulator (a bug, not an API failure) fails the
    block on exit, after having been answered as a 500 Status.
    ``request_log_limit``: keep only the last N requests in the log (long-running servers).
    """
    served = tuple(served)
    store = storage.Store(catalog=resources.Catalog(), history_size=history_size, clock=clock)
    store.catalog.install(resources.CRD)
    crds.link(store)
    for spec in served:
        if spec.custom:
            store.create(resources.CRD, crds.to_crd(spec), manager=TEST_MANAGER, client=False)
        else:
            store.catalog.install(spec)
    if resources.CRD not in served:
        store.catalog.uninstall(resources.CRD)
    if (
        namespace_spec := store.catalog.lookup(group="", version="v1", plural="namespaces")
    ) is not None:
        for namespace in namespaces:
            obj = {"metadata": {"name": namespace}}
            store.create(namespace_spec, obj, manager=TEST_MANAGER, client=False)

    handler = handling.Handler(
        store=store,
        bookmark_interval=bookmark_interval,
        request_log_limit=request_log_limit,
        strict=strict,
    )
    async with handler, contextlib.AsyncExitStack() as stack:
        # handler_cancellation: a client hanging up a watch cancels its stream at once.
        runner = aiohttp.web.ServerRunner(
            aiohttp.web.Server(handler, handler_cancellation=True), shutdown_timeout=1.0
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = aiohttp.web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        url = f"http://{host}:{bound_port}"
        if kubeconfig_path is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="kubeapi-"))
            kubeconfig_path = Path(directory) / "kubeconfig"
        kubeconfigs.write_kubeconfig(kubeconfig_path, server=url)
        api = KubeAPI(handler=handler, url=url, kubeconfig_path=kubeconfig_path)
        try:
            yield api
        finally:
            store.journal.signal(
                journal.Disconnect
            )  # end open streams, or the shutdown waits for them
