"""The worker's model calls, over the shared gateway client (shared/client.py).

What a failure means for a job is decided here: a stage that fails (the model is down, busy past our
patience, refused the input, hung, or answered outside its contract) is `StageFailed` and only that
stage is degraded; the gateway itself not answering is `GatewayUnreachable`, and the whole job is retried
later (with backoff) instead of storing an item degraded in every stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from shared.client import (
    GatewayClient,
    GatewayError,
    GatewayUnreachable,
    Payload,
    RetryPolicy,
    validation_problem,
)
from shared.schemas.blip2 import AnalyzeImageRequest, AnalyzeImageResponse, LabelClusterRequest, LabelClusterResponse
from shared.schemas.clip import EmbedResponse, ImageEmbedRequest
from shared.schemas.detector import DetectRequest, DetectResponse
from shared.schemas.gateway import ClassifyRequest, ClassifyResponse, SlotState
from shared.schemas.llm import (
    AnalyzeJsonSchemaRequest,
    EnrichClusterRequest,
    EnrichClusterResponse,
    JsonSchemaAnalysis,
)
from shared.schemas.whisper import TranscribeResponse
from worker.settings import WorkerSettings

__all__ = ["GatewayUnreachable", "ModelClient", "StageFailed"]

T = TypeVar("T", bound=BaseModel)


class StageFailed(Exception):
    """A model stage could not run (service down, busy past our patience, or it refused the input)."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = f"{service}: {reason}"


class ModelClient:
    def __init__(self, gateway_url: str, timeout_s: float = 300.0, busy_retries: int = 2,
                 api_key: str | None = None, gateway_wait_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None,
                 image_embedder: Callable[[str], EmbedResponse] | None = None) -> None:
        retry = RetryPolicy(busy_retries=busy_retries, connect_wait_s=gateway_wait_s)
        self.gateway = GatewayClient(gateway_url, api_key, timeout_s, retry=retry, transport=transport)
        self.image_embedder = image_embedder

    @classmethod
    def from_settings(cls, settings: WorkerSettings,
                      image_embedder: Callable[[str], EmbedResponse] | None = None) -> ModelClient:
        key = settings.gateway.api_key
        return cls(settings.gateway.url, settings.model_timeout_s, settings.busy_retries,
                   key.get_secret_value() if key else None, settings.gateway_wait_s, image_embedder=image_embedder)

    def call(self, service: str, path: str, payload: Payload, answer: type[T] | None = None) -> Any:
        """A task endpoint of `service`; its answer validated as `answer` (raw JSON only when none is given)."""
        with _stage(service):
            if answer is None:
                return self.gateway.call_json(service, path, payload)
            return self.gateway.call(service, path, payload, answer)

    def classify(self, image_b64: str) -> ClassifyResponse:
        """The cascade (`/v1/classify`): cnn first, escalated as its policy says."""
        with _stage("cascade"):
            return self.gateway.classify(ClassifyRequest(image=image_b64))

    def embed_image(self, image_b64: str) -> EmbedResponse:
        """One image's embedding; sent with other jobs' images when the worker shares a batcher."""
        if self.image_embedder is not None:
            return self.image_embedder(image_b64)
        return self.embed_images([image_b64])

    def embed_images(self, images_b64: list[str]) -> EmbedResponse:
        return self.call("clip", "v1/embed/image", ImageEmbedRequest(images=images_b64), EmbedResponse)

    def detect(self, image_b64: str, queries: list[str] | None = None) -> DetectResponse:
        """The detector's boxes for one image (its default score threshold; `queries`: only these)."""
        return self.call("detector", "v1/detect", DetectRequest(images=[image_b64], queries=queries), DetectResponse)

    def has_service(self, name: str) -> bool | None:
        """Whether the gateway has this service (up or not); None when the gateway cannot say."""
        try:
            report = self.gateway.models()
        except (GatewayError, ValidationError):
            return None
        return any(model.id == name for model in report.data)

    def loaded_models(self) -> set[str] | None:
        """The services whose model is loaded (or loading) now, from the gateway's `GET /v1/models`;
        None when the gateway cannot say."""
        try:
            report = self.gateway.models()
        except (GatewayError, ValidationError):
            return None
        return {model.id for model in report.data if model.state in (SlotState.loaded, SlotState.loading)}

    def analyze_image(self, image_b64: str) -> AnalyzeImageResponse:
        return self.call("blip2", "v1/analyze-image", AnalyzeImageRequest(image=image_b64), AnalyzeImageResponse)

    def transcribe_file(self, audio: IO[bytes]) -> TranscribeResponse:
        """A multipart upload, streamed from the open file (no base64, no whole file in memory here)."""
        with _stage("whisper"):
            return self.gateway.request("POST", "/v1/services/whisper/v1/transcribe", answer=TranscribeResponse,
                                        files={"file": ("audio", audio)}, data={"language": "auto"})

    def analyze_json_schema(self, samples: list[Any]) -> JsonSchemaAnalysis:
        request = _request("llm", AnalyzeJsonSchemaRequest, json_samples=samples, user_comment="")
        return self.call("llm", "v1/analyze-json-schema", request, JsonSchemaAnalysis)

    def label_cluster(self, images_b64: list[str], cluster_size: int) -> LabelClusterResponse:
        request = _request("blip2", LabelClusterRequest, images=images_b64, cluster_size=cluster_size)
        return self.call("blip2", "v1/label-cluster", request, LabelClusterResponse)

    def enrich_cluster(self, name: str, description: str, captions: list[str]) -> EnrichClusterResponse:
        request = _request("llm", EnrichClusterRequest, cluster_name=name, description=description,
                           sample_captions=captions)
        return self.call("llm", "v1/enrich-cluster", request, EnrichClusterResponse)

    def close(self) -> None:
        self.gateway.close()


@contextmanager
def _stage(service: str) -> Iterator[None]:
    try:
        yield
    except GatewayUnreachable:
        raise
    except GatewayError as exc:
        raise StageFailed(service, exc.reason) from exc


def _request(service: str, model: type[T], **fields: Any) -> T:
    """A request built from stored data, which the service's contract may refuse (e.g. a JSON document
    whose samples are not objects): that is this stage failing, said as the service would say it."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise StageFailed(service, f"input refused: {validation_problem(exc)}") from exc
