"""An emulated Kubernetes API server over real HTTP, for tests and ``tailwire dev``.

The one shared fake of kube-apiserver, used wherever no cluster can run (no
Docker engine for K3s): services talk to it with kubernetes-asyncio through a
kubeconfig exactly as they talk to a cluster. It is built on kmock's
``RawHandler`` (request parsing, the request log, the reaction DSL for fault
injection) and fills kmock 0.8's gaps itself: ``watch=True``, resource
versions, uid/generation, selectors, PUT, patch types, server-side apply,
finalizers, status isolation, bookmarks, 410 Gone and discovery.

Usage::

    async with kubeapi.serve() as api:
        async with await api.api_client() as api_client:
            pods = await client.CoreV1Api(api_client).list_namespaced_pod("default")
        api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
        api.expire_history()  # the next watch from an old resourceVersion gets 410

Responsible for: the API contract (shapes of objects, lists, watch events
and Status failures; the semantics of every verb) for the resources in
:mod:`.resources` and any CRD installed at runtime.

Must not: be imported by services (they meet it only through a kubeconfig),
pretend to run controllers (no scheduler, kubelet, garbage collector or
namespace cascade; pods never start), or silently accept what a real server
would refuse: where it cannot be faithful (``dryRun``), it answers 400.
"""

from .kubeconfigs import Cluster, new_api_client, write_kubeconfig
from .resources import DEFAULT, Catalog, ResourceSpec
from .serving import KubeAPI, RequestRecord, serve
from .statuses import StatusError

__all__ = [
    "DEFAULT",
    "Catalog",
    "Cluster",
    "KubeAPI",
    "RequestRecord",
    "ResourceSpec",
    "StatusError",
    "new_api_client",
    "serve",
    "write_kubeconfig",
]
