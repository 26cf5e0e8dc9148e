"""Pure domain logic of the dnsupdater: frozen models and functions, no I/O, no framework."""
