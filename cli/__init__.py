"""The `tailwire` command: the composition root. It imports every service, so it sits above
them; nothing imports it."""
