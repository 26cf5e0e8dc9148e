"""The five services. Each folder is one service; none imports another (import-linter)."""
