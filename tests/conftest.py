"""Root conftest: loads the shared fixture modules of tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.nats",
    "tests.fixtures.telemetry",
    "tests.fixtures.controlapi",
    "tests.fixtures.netns",
    "tests.fixtures.kube",
    "tests.fixtures.dns",
]
