"""Versioned pydantic models of every message on the bus, one module per area.

Each model carries `version` (a literal: a message of another version fails validation and
goes to the dead-letter subject) and `type` (a literal naming the event). Models are frozen
and forbid unknown fields, so a typo in a producer is caught at the consumer's boundary.
These modules must not do I/O: they describe messages, they do not send them.
"""
