"""Alert manager and its delivery channels."""
