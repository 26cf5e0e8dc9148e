"""Pure datapath logic of the nodeagent: what the kernel should hold, and the difference.

`facts` (the vocabulary), `desiring` (plan -> desired facts), `diffing` (desired vs actual ->
changes). No I/O and no framework here (import-linter enforces it).
"""
