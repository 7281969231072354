"""`python -m services.blip2`: serve BLIP-2 on BLIP2_HOST:BLIP2_PORT (default 127.0.0.1:8001)."""

from services.blip2.settings import Blip2Settings
from shared.kit.serve import serve

if __name__ == "__main__":
    serve("services.blip2.app:create_app", Blip2Settings())
