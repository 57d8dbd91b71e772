"""Trading plugins: signal validation gate (SIG), target/stop engine (TGT)."""
