"""renderer, ingress side: a TailscaleGateway to a working Gateway API stack.

Pure rendering only: each module takes the TailscaleGateway model plus snapshot data and
returns manifests (plain dicts, ready for server-side apply) and status. Nothing here does
I/O or imports a framework; the renderer's handlers and adapters apply what it returns.
The entry point is `rendering.render_gateway`.
"""
