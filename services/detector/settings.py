"""Settings of the detector service (env prefix `DETECTOR_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.detector.labels import COCO_LABELS
from shared.config import ImageInputSettings


class DetectorSettings(ImageInputSettings):
    """Images in, one forward pass per request (OWLv2's queries differ per request, so no batcher)."""

    model_config = SettingsConfigDict(env_prefix="DETECTOR_", env_nested_delimiter="__", extra="ignore")

    name: str = "detector"
    port: int = 8006
    score_threshold: float = Field(
        default=0.5, ge=0, le=1, description="Default score below which boxes are dropped (a request's "
        "`score_threshold` overrides it); OWLv2's scores run lower, about 0.1-0.3 for a good match.")
    nms_iou: float = Field(
        default=0.5, gt=0, le=1, description="OWLv2 scores every query on every one of its patch boxes, so one "
        "object comes back as several overlapping boxes: of two boxes with the same label overlapping more than "
        "this (intersection over union), the lower-scored is dropped. 1: keep them all. RT-DETR needs none.")
    default_queries: list[str] = Field(
        default_factory=lambda: list(COCO_LABELS),
        description="What an open-vocabulary model (OWLv2) looks for when a request names no `queries`: "
                    "JSON list; default the 80 COCO object names, so both kinds of model answer alike.")
