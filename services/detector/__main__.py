"""`python -m services.detector`: serve the detector service on its port."""

from services.detector.settings import DetectorSettings
from shared.kit.serve import serve

if __name__ == "__main__":
    serve("services.detector.app:create_app", DetectorSettings())
