"""The nodeagent's only I/O: namespaces (`namespaces`), rtnetlink (`netlink`), nftables
(`nftables`) and a gateway's tailscaled (`localapi`). They convert foreign errors into
`tailwire.shared.errors` and decide nothing."""
