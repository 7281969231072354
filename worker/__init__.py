"""The ingest worker: runs media and cluster jobs from the Redis stream through the gateway."""
