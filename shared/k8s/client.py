"""Kubernetes client configuration as kubectl does it: in-cluster, else KUBECONFIG.

The only place that decides how to reach the API; adapters take the resulting ApiClient.
"""

from __future__ import annotations

import os

from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException

from tailwire.shared import errors, settings


async def api_client(kube: settings.KubernetesSettings | None = None) -> client.ApiClient:
    """An ApiClient for the in-cluster service account, else `kubeconfig`/KUBECONFIG/~/.kube."""
    kube = kube or settings.KubernetesSettings()
    if kube.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except ConfigException as exc:
            raise errors.ConfigurationError(f"in-cluster Kubernetes config: {exc}") from exc
    configuration = client.Configuration()
    try:
        await config.load_kube_config(
            config_file=kube.kubeconfig or os.environ.get("KUBECONFIG"),
            client_configuration=configuration,
        )
    except (ConfigException, FileNotFoundError, OSError) as exc:
        raise errors.ConfigurationError(f"kubeconfig: {exc}") from exc
    return client.ApiClient(configuration=configuration)
