"""Hostile submissions sent through the public API, with checks of the host afterwards."""
