"""The gateway (HTTP server on :8000): scheduler, dispatch, cascade and the API routes."""
