"""The execution engine (EXE) and its order journal: the one path from an approved order to MT5."""
