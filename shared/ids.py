"""Identifier types, so a node name is never passed where a pod UID is expected."""

from typing import NewType

NodeName = NewType("NodeName", str)
PodUID = NewType("PodUID", str)
Tailnet = NewType("Tailnet", str)
GroupName = NewType("GroupName", str)
