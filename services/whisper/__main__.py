"""`python -m services.whisper`: run the whisper service with its settings (env prefix WHISPER_)."""

from services.whisper.model import WhisperSettings
from shared.kit.serve import serve

if __name__ == "__main__":
    settings = WhisperSettings()
    serve("services.whisper.app:create_app", settings)
