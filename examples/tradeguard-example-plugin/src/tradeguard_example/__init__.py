"""An example third-party tradeguard plugin package: a strategy and a check."""
