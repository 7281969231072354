"""The gateway's public HTTP API, one module per resource."""
