"""The embedded store: the SQLite journal (orders, fills, decisions, snapshots, the latch, the audit chain),
its in-memory stand-in, the journal lock, the audit format, and what happens when the file stops taking writes."""
