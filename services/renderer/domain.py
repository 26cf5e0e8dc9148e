"""Pure domain logic of the renderer: frozen models and functions, no I/O, no framework."""
