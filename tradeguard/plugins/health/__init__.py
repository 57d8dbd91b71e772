"""Health plugins: the MT5 terminal health monitor (HLT)."""
