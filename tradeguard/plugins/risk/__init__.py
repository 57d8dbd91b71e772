"""Risk plugins: real-time risk guard (RSK), kill switch (KSW), position sizing (SIZ)."""
