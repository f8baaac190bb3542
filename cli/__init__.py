"""The fakeguard command line (serve, migrate, keys, ...)."""
