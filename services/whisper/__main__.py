"""`python -m services.whisper`: serve the whisper service on its port."""

from services.whisper.settings import WhisperSettings
from shared.kit.serve import serve

if __name__ == "__main__":
    serve("services.whisper.app:create_app", WhisperSettings())
