"""The gateway: registry, memory budget, cascade, ingest, search, health and the CLI."""
