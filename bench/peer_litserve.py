"""The peer for `bench peer_serving`: LitServe serving the cnn or the clip model with the services' own code.

    python -m bench.peer_litserve cnn|clip MODEL_FOLDER PORT

Same request and answer JSON as the service (`{"images": [base64]}`), the same model classes,
decoding and preprocessing, the same batch settings (up to 16 items, 5 ms wait). LitServe runs
HTTP and JSON in its server process and decode + batch + predict + encode in one worker process.
Not a benchmark itself (`python -m bench` skips it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import litserve as ls
import numpy as np
import psutil

from services.clip.model import ClipModel
from services.clip.settings import ClipSettings
from services.cnn.model import CnnModel, summarise
from services.cnn.settings import CnnSettings
from shared.imaging import decode_image_base64
from tests.support.processes import REPO, free_port

MAX_BATCH, BATCH_WAIT_S = 16, 0.005


class LitServeProcess:
    """This module run as a LitServe server in a process of its own, for the benchmark to call."""

    def __init__(self, kind: str, folder: Path, log: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.peer_litserve", kind, str(folder), str(self.port)], cwd=REPO,
            env={**os.environ, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self.log = log

    def wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"LitServe exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).text.strip('"') == "ok":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"LitServe not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            child.terminate()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class CnnPeer(ls.LitAPI):
    def __init__(self, folder: Path) -> None:
        super().__init__(max_batch_size=MAX_BATCH, batch_timeout=BATCH_WAIT_S, api_path="/v1/classify")
        self.folder = folder

    def setup(self, device: str) -> None:
        self.model = CnnModel(CnnSettings(model_path=self.folder, device="cpu"))
        self.model.load()

    # `request` unannotated: LitServe reads the annotation to build its endpoint, and a string one breaks it
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        image = decode_image_base64(request["images"][0], max_pixels=self.model.settings.max_image_pixels,
                                    name="images[0]")
        return self.model.preprocess([image])[0], int(request.get("top_k", 5))

    def batch(self, inputs: list[tuple[np.ndarray, int]]) -> list[tuple[np.ndarray, int]]:
        return inputs

    def predict(self, inputs: list[tuple[np.ndarray, int]]) -> list[tuple[np.ndarray, int]]:
        probabilities = self.model.probabilities([array for array, _ in inputs])
        return [(p, top_k) for p, (_, top_k) in zip(probabilities, inputs, strict=True)]

    def unbatch(self, output: list[tuple[np.ndarray, int]]) -> list[tuple[np.ndarray, int]]:
        return output

    def encode_response(self, output: tuple[np.ndarray, int]) -> dict[str, Any]:
        probabilities, top_k = output
        result = summarise(probabilities, self.model.labels, top_k)
        return {"model": self.model.path.name, "results": [result.model_dump()]}


class ClipPeer(ls.LitAPI):
    def __init__(self, folder: Path) -> None:
        super().__init__(max_batch_size=MAX_BATCH, batch_timeout=BATCH_WAIT_S, api_path="/v1/embed/image")
        self.folder = folder

    def setup(self, device: str) -> None:
        self.model = ClipModel(ClipSettings(model_path=self.folder, device="cpu"))
        self.model.load()

    def decode_request(self, request):  # type: ignore[no-untyped-def]
        image = decode_image_base64(request["images"][0], max_pixels=self.model.settings.max_image_pixels,
                                    name="images[0]")
        return self.model.preprocess([image])[0]

    def batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return inputs

    def predict(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return self.model.embed_images(arrays)

    def unbatch(self, output: list[np.ndarray]) -> list[np.ndarray]:
        return output

    def encode_response(self, vector: np.ndarray) -> dict[str, Any]:
        return {"model": self.model.identity(), "dim": self.model.dim,
                "weights_sha256": getattr(self.model, "weights_sha256", None), "embeddings": [vector.tolist()]}


def main(argv: list[str]) -> None:
    kind, folder, port = argv[0], Path(argv[1]), int(argv[2])
    api = (CnnPeer if kind == "cnn" else ClipPeer)(folder)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=600, healthcheck_path="/health")
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
