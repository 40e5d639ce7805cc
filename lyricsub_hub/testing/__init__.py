"""Test helpers: a loopback test Hub, tiny real models and a socket guard, so tests need no Hub and no network."""
