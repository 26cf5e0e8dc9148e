"""`tailwire run keyminter` with no credentials: it starts, says so, and fails key requests
for the default tailnet with `keys.failed` naming the missing setting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import nats

from tailwire.shared import bus, settings, subjects
from tailwire.shared.events import base, keys
from tailwire.testing import natsserver

from . import helpers


async def test_unconfigured_keyminter_runs_and_names_the_missing_setting(
    nats_server: natsserver.NatsServer,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILWIRE_")}
    env |= {
        "TAILWIRE_NATS_URL": nats_server.url,
        "TAILWIRE_TRACES_EXPORTER": "none",
        "TAILWIRE_LOG_JSON": "false",
        "KUBECONFIG": "/nonexistent/kubeconfig",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tailwire.cli", "run", "keyminter"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    owner = base.OwnerRef(
        api_version="tailscale.rajsingh.info/v1alpha1",
        kind="EgressGroup",
        name="payments",
        uid="0b7c2d9e-0000-4000-8000-000000000001",
    )
    ref = subjects.ObjectRef(kind=subjects.Kind.EGRESSGROUP, namespace=None, name="payments")
    client = await nats.connect(nats_server.url)
    try:
        failures = await client.subscribe(subjects.keys_failed(ref))
        js = client.jetstream()
        # The streams the keyminter waits for, declared as their owner (the renderer) would.
        await bus.declare_streams(js, bus=settings.BusSettings())
        await js.publish(subjects.keys_request(ref), helpers.key_request(owner).to_bytes())
        message = await failures.next_msg(timeout=20)
    finally:
        await client.close()
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    failed = keys.KeyFailed.model_validate_json(message.data)
    assert failed.reason == "NotConfigured"
    assert "TAILWIRE_TAILSCALE_OAUTH_CLIENT_ID" in failed.message
    assert not failed.retryable
    assert "no default tailnet is configured" in stderr
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
