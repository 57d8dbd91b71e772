"""The `tradeguard` command line: the commands, and what `status` and `demo` show."""
