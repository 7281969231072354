"""`python -m services.clip`: serve the clip service on its port."""

from services.clip.settings import ClipSettings
from shared.kit.serve import serve

if __name__ == "__main__":
    serve("services.clip.app:create_app", ClipSettings())
