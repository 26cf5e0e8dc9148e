"""`python -m tailwire.cli` is `tailwire`."""

from tailwire.cli import main

main.main()
