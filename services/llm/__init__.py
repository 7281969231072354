"""The LLM service (port 8003, Phi-3.5-mini style): generation, OpenAI chat, structured JSON tasks."""
