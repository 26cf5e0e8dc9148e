"""nodeagent: executes its node's plan with netlink and nftables, and acks.

It never decides: it compares the plan with the kernel and writes the difference. It reads
only its own node's subjects and publishes only its own acks.
"""
