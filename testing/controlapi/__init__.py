"""A local, faithful stand-in for the Tailscale control API v2 and Headscale's `/api/v1`.

The one shared fake of the control plane (CONVENTIONS.md, habit 9): tests run the project's
real httpx client against it over real HTTP on 127.0.0.1, and `tailwire dev` uses it as a
clearly labelled local stand-in. It implements the public contract tailwire relies on (OAuth
client credentials, tagged auth keys, devices, split DNS; Headscale pre-auth keys and nodes),
runtime fault injection (429 + Retry-After, 5xx, latency) and a request log.

    async with controlapi.serve(clock=controlapi.FakeClock()) as fake:
        client = fake.add_oauth_client(scopes=["auth_keys", "devices:core"], tags=["tag:k8s"])
        ...  # point the real client at fake.url

It must not be imported by services or shared code (import-linter: testing sits above them),
must not reach the network beyond its own socket, and never logs or lists a secret.
"""

from .clock import Clock, FakeClock, SystemClock
from .errors import ApiError, RegistrationError
from .server import LABEL_HEADER, FakeControlAPI, serve

__all__ = [
    "LABEL_HEADER",
    "ApiError",
    "Clock",
    "FakeClock",
    "FakeControlAPI",
    "RegistrationError",
    "SystemClock",
    "serve",
]
