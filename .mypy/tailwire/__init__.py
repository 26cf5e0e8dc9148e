"""Type-checking view of the tailwire package (symlinks to the top-level folders)."""
