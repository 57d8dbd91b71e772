"""Replay: the loop that drives the runtime over the emulator's data (and the live loop beside it)."""
