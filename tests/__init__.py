"""tailwire's test suite: tests/<area>/test_<subject>_<behaviour>.py."""
