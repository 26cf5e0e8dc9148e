"""Pure domain logic of the nodeagent: frozen models and functions, no I/O, no framework."""
