"""The whisper service: speech to text, faster-whisper or openai-whisper behind the service kit."""
