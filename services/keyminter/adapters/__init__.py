"""The keyminter's I/O: control-API clients (Tailscale, Headscale), Secrets, time.

Only these modules talk to the outside; each converts foreign errors (httpx,
kubernetes-asyncio) into `tailwire.shared.errors` at its boundary, and none of them logs
or raises a key, a token or a client secret.
"""
