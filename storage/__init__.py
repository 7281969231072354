"""Postgres + pgvector storage: models, engine, repositories, the content-addressed media store."""
