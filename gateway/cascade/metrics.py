"""Prometheus counters of the cascade's outcomes, per variant × label × decision and per stage."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from shared.schemas.gateway import ClassifyResponse


class CascadeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.answers = Counter("mediamesh_cascade_answers", "Cascade answers",
                               ["variant", "label", "decision"], registry=registry)
        self.stages = Counter("mediamesh_cascade_stage_runs", "Cascade stage runs, by what came next",
                              ["variant", "stage", "service", "decision"], registry=registry)
        self.stage_seconds = Histogram("mediamesh_cascade_stage_seconds", "Cascade stage latency",
                                       ["stage", "service"], registry=registry)

    def observe(self, answer: ClassifyResponse) -> None:
        # a review has no label: "" keeps the series apart from every real label
        self.answers.labels(answer.variant, answer.label or "", answer.decision).inc()
        for stage in answer.trace.stages:
            decision = stage.decision if stage.status == "ok" else "failed"
            self.stages.labels(answer.variant, stage.stage, stage.service, decision).inc()
            self.stage_seconds.labels(stage.stage, stage.service).observe(stage.ms / 1000)
