"""Temporary: loads the Kubernetes fixtures for tests/harness until tests/conftest.py does.

Remove this file once ``"tests.fixtures.kube"`` is in the root ``pytest_plugins``
(non-root conftests may not declare ``pytest_plugins``, so the fixtures are imported).
"""

from tests.fixtures.kube import (  # noqa: F401
    k3s_cluster,
    kube_api,
    kube_client,
    kube_emulator,
    kube_namespace,
)
