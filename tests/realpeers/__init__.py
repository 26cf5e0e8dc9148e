"""Tests against the real peers built by `make peers` (issue 13): each marked `real_peers`."""
