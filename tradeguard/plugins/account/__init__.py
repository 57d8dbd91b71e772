"""Broker-truth plugins: account state tracker (ACC), position reconciler (POS), state alignment (ALN)."""
