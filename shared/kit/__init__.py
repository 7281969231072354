"""The service kit: app factory, model lifecycle, served-model base class, batching, hooks."""
