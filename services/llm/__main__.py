"""`python -m services.llm`: serve the LLM on LLM_HOST:LLM_PORT (default 127.0.0.1:8003); loads on demand."""

from services.llm.settings import LlmSettings
from shared.kit.serve import serve

if __name__ == "__main__":
    serve("services.llm.app:create_app", LlmSettings())
