"""Root conftest: loads the shared fixture modules of tests/fixtures/ and sets hypothesis up.

In CI (`CI=true`) hypothesis runs derandomized and without its example database, so a run is
reproducible and never trips over a database another process wrote at the same time.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

pytest_plugins = [
    "tests.fixtures.nats",
    "tests.fixtures.telemetry",
    "tests.fixtures.controlapi",
    "tests.fixtures.netns",
    "tests.fixtures.kube",
    "tests.fixtures.dns",
    "tests.fixtures.kubeapiserver",
]
