"""Operating a node: options checks, logs, metrics, TLS, event plugins, demo data."""
