"""Tests of the test harness itself: the fake control API and the network-namespace helpers."""
