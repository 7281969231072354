"""detector service: `POST /v1/detect` — boxes, labels and scores, optionally for text queries."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.schemas.common import TimedResponse


class Box(BaseModel):
    """Corners of an axis-aligned box: (x0, y0) top left, (x1, y1) bottom right."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


class DetectRequest(BaseModel):
    images: list[str] = Field(min_length=1, max_length=16, description="Base64-encoded images.")
    score_threshold: float | None = Field(
        default=None, ge=0, le=1, description="Boxes scoring below this are dropped; default DETECTOR_SCORE_THRESHOLD.")
    max_boxes: int = Field(default=100, ge=1, le=300, description="Most boxes per image, highest scores first.")
    queries: list[str] | None = Field(
        default=None, max_length=64,
        description="What to look for. An open-vocabulary model (OWLv2) detects these phrases; a closed-vocabulary "
                    "one (RT-DETR, COCO) keeps only these of its labels and refuses (422) a query it has no label for.",
    )


class DetectedObject(BaseModel):
    label: str
    score: float
    box: Box = Field(description="In pixels of the image as sent (after its EXIF orientation), clamped to it.")
    box_normalized: Box = Field(description="The same box as fractions of the image's width and height (0-1).")


class ImageDetections(BaseModel):
    width: int
    height: int
    objects: list[DetectedObject] = Field(description="Highest score first; empty when nothing was found.")


class DetectResponse(TimedResponse):
    model: str
    open_vocabulary: bool
    results: list[ImageDetections]
