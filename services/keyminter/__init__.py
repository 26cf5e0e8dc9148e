"""keyminter: tagged authkeys from the Tailscale or Headscale control API, into Secrets.

It answers key requests, renews before expiry and revokes keys and devices of deleted owners.
It never puts a key on the bus or in a log; it writes only Secrets it owns.
"""
