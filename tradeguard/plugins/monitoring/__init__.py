"""Monitoring plugins: latency metrics (LAT), broker metrics (MTR), audit trail (AUD), profiler (PRF)."""
