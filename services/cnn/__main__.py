"""`python -m services.cnn`: serve the cnn service on its port."""

from services.cnn.settings import CnnSettings
from shared.kit.serve import serve

if __name__ == "__main__":
    serve("services.cnn.app:create_app", CnnSettings())
