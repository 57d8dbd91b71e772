"""Confluence plugins: scenario scorer (CNF), insights memory (MMR), signal deduplicator (DED)."""
