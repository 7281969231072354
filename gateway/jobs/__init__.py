"""Durable jobs: a Redis Streams queue (delivery) and a Postgres jobs table (state, progress, attempts)."""
