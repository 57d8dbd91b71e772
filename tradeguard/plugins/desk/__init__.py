"""The operator's desk: the control API and web console (and, with them, the Telegram commands)."""
