"""mediamesh's own package: the service kit, shared schemas and settings."""
