"""The storage HTTP API: upload, jobs, media, search, clusters (APIRouters included into the gateway)."""
