"""Pure domain logic of the watcher: frozen models and functions, no I/O, no framework."""
