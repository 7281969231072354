"""One FastAPI app per model, each on the shared service kit."""
