"""Pure domain logic of the keyminter: frozen models and functions, no I/O, no framework."""
