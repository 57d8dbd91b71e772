"""Example strategy plugins: how a team writes one. Each reads ``runtime.bars`` and returns Signals."""
