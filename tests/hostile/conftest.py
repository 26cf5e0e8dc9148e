"""Fixtures of the hostile-input tests: the keyminter's own (a control-API fake with its
clock, the emulated API with tailwire's namespace, the default tailnet's settings), so the
keyminter runs here exactly as in its tests."""

from tests.keyminter.conftest import (  # noqa: F401 (re-exported fixtures)
    clock,
    emulator_client,
    kube,
    sleeper,
    tailscale_settings,
)
