"""The cascade engine, strategies, fusion, A/B split and calibration, with fake services."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.cascade.engine import CascadeEngine
from gateway.cascade.store import CascadeStore, share_point
from shared.cascade.config import CascadeConfig, CascadeVariant, EscalationStrategy, StageConfig
from shared.cascade.routing import decide
from shared.cascade.scoring import fuse, match_answer
from shared.http.errors import BadInput, Unavailable


class FakeServices:
    """cnn says cat 0.6 / dog 0.3 / fox 0.1; clip prefers dog; blip2 scores `blip2` and answers `vqa_answer`."""

    def __init__(self, vqa_answer: str = "it is a dog", down: set[str] | None = None,
                 blip2: dict[str, float] | None = None) -> None:
        self.vqa_answer = vqa_answer
        self.blip2 = blip2 or {"dog": 0.8, "cat": 0.1, "fox": 0.1}
        self.down = down or set()
        self.calls: list[tuple[str, str, dict[str, object]]] = []

    async def __call__(self, service: str, path: str, payload: dict[str, object]) -> dict[str, object]:
        self.calls.append((service, path, payload))
        if service in self.down:
            raise Unavailable(f"service '{service}' is not reachable")
        if path == "/v1/classify":
            top = [{"label": "cat", "score": 0.6}, {"label": "dog", "score": 0.3}, {"label": "fox", "score": 0.1}]
            return {"model": "cnn", "results": [{"top_k": top, "entropy": 0.9, "margin": 0.3}],
                    "processing_time_ms": 1}
        if path == "/v1/zero-shot":
            labels = payload["labels"]
            scores = {"dog": 0.7, "cat": 0.2, "fox": 0.1}
            return {"model": "clip", "processing_time_ms": 1,
                    "results": [{"scores": [{"label": la, "score": scores[la]} for la in labels]}]}
        options = payload["options"]
        total = sum(self.blip2[o] for o in options)
        scores = [{"label": o, "score": self.blip2[o] / total} for o in options]
        return {"answer": self.vqa_answer, "processing_time_ms": 1, "scores": scores}


def variant(cnn_threshold: float = 0.8, clip_threshold: float = 0.9, **cnn_strategy: object) -> CascadeVariant:
    return CascadeVariant(stages=[
        StageConfig(kind="cnn", service="cnn", weight=0.5,
                    escalate=EscalationStrategy(threshold=cnn_threshold, **cnn_strategy)),
        StageConfig(kind="clip", service="clip", weight=0.5, top_k=3,
                    escalate=EscalationStrategy(threshold=clip_threshold)),
        StageConfig(kind="blip2", service="blip2", weight=1.0, top_k=3),
    ])


async def classify(services: FakeServices, v: CascadeVariant, mode: str = "auto"):  # noqa: ANN201
    return await CascadeEngine(services).classify("aW1n", v, variant_name="a", request_id="r1", mode=mode)


async def test_confident_cnn_stops_at_the_first_stage() -> None:
    services = FakeServices()
    answer = await classify(services, variant(cnn_threshold=0.5))
    assert answer.label == "cat" and answer.confidence == 0.6
    assert [s.stage for s in answer.trace.stages] == ["cnn"]
    assert answer.trace.stages[0].decision == "stop" and "0.600 >= threshold 0.500" in answer.trace.stages[0].reason
    assert len(services.calls) == 1


async def test_uncertain_cnn_is_reranked_by_clip_and_fused() -> None:
    answer = await classify(FakeServices(), variant(cnn_threshold=0.8, clip_threshold=0.4))
    # fused: dog = (0.3 + 0.7) / 2 = 0.5, cat = (0.6 + 0.2) / 2 = 0.4, fox = 0.1
    assert answer.label == "dog" and answer.confidence == pytest.approx(0.5)
    cnn, clip = answer.trace.stages
    assert cnn.decision == "escalate" and "0.600 < threshold 0.800" in cnn.reason
    assert clip.decision == "stop" and clip.top_k[0].label == "dog" and clip.ms >= 0


async def test_least_certain_go_on_to_blip2_which_decides() -> None:
    services = FakeServices(vqa_answer="That is a fox.", blip2={"fox": 0.8, "dog": 0.1, "cat": 0.1})
    answer = await classify(services, variant(cnn_threshold=0.8, clip_threshold=0.9))
    assert [s.stage for s in answer.trace.stages] == ["cnn", "clip", "blip2"]
    # fused (0.5 cnn + 0.5 clip + 1.0 blip2) / 2: fox (0.05 + 0.05 + 0.8) / 2 = 0.45, dog 0.3, cat 0.25
    assert answer.label == "fox" and answer.confidence == pytest.approx(0.45)
    assert answer.trace.stages[-1].answer == "That is a fox." and answer.trace.rule == "top-1"
    assert services.calls[-1][1] == "/v1/score-options" and services.calls[-1][2]["options"] == ["dog", "cat", "fox"]
    question = services.calls[-1][2]["question"]
    assert question == "Which of these is it: dog, cat, fox? Answer with one of them."


async def test_a_down_later_stage_degrades_to_the_last_good_answer() -> None:
    answer = await classify(FakeServices(down={"blip2"}), variant(cnn_threshold=0.8, clip_threshold=0.9))
    assert answer.trace.degraded and answer.label == "dog"
    assert answer.trace.stages[-1].status == "failed" and "not reachable" in answer.trace.stages[-1].error


async def test_a_down_first_stage_is_an_error() -> None:
    with pytest.raises(Unavailable):
        await classify(FakeServices(down={"cnn"}), variant())


async def test_modes_force_or_forbid_escalation() -> None:
    always = await classify(FakeServices(), variant(cnn_threshold=0.0), mode="always")
    assert len(always.trace.stages) == 3
    never = await classify(FakeServices(), variant(cnn_threshold=1.0), mode="never")
    assert len(never.trace.stages) == 1


def test_strategies() -> None:
    scores = {"pit": 0.55, "clean": 0.45}
    assert decide(EscalationStrategy(threshold=0.6), scores).escalate
    assert not decide(EscalationStrategy(threshold=0.5), scores).escalate
    per_class = EscalationStrategy(threshold=0.5, class_thresholds={"pit": 0.9})
    assert decide(per_class, scores).escalate and "'pit' threshold 0.900" in decide(per_class, scores).reason
    interval = EscalationStrategy(kind="interval", positive_label="pit", low=0.1, high=0.9)
    assert decide(interval, scores).escalate and not decide(interval, {"pit": 0.95, "clean": 0.05}).escalate
    assert not decide(interval, {"pit": 0.05, "clean": 0.95}).escalate
    assert decide(EscalationStrategy(kind="entropy", max_entropy=0.5), scores).escalate
    assert not decide(EscalationStrategy(kind="entropy", max_entropy=0.5), {"a": 0.99, "b": 0.01}).escalate
    always = EscalationStrategy(threshold=0.0, always_escalate=["pit"])
    assert decide(always, {"pit": 0.99}).escalate and "always escalates" in decide(always, {"pit": 0.99}).reason


def test_fusion_and_answer_matching() -> None:
    assert fuse([{"a": 0.8, "b": 0.2}, {"b": 1.0}], [1.0, 3.0]) == pytest.approx({"a": 0.2, "b": 0.8})
    assert match_answer("I think it's a Maine Coon!", ["maine_coon", "coon", "siamese"]) == "maine_coon"
    assert match_answer("a dogfish", ["dog", "cat"]) is None


@pytest.mark.parametrize(("config", "phrase"), [
    ({"variants": {"a": {"stages": [{"kind": "clip", "service": "clip"}]}}}, "first stage must be a cnn"),
    ({"split": {"zzz": 1.0}}, "unknown variant"),
    ({"variants": {"a": {}, "b": {}}, "split": {"a": 0.5, "b": 0.4}}, "add up to 1"),
    ({"variants": {"a": {"stages": [{"kind": "cnn", "service": "cnn",
                                     "escalate": {"kind": "interval"}}]}}}, "needs positive_label"),
    ({"variants": {"a": {"stages": [{"kind": "cnn", "service": "cnn"},
                                    {"kind": "clip", "service": "clip", "template": "no slot"}]}}}, "must contain {}"),
])
def test_bad_configs_are_refused(config: dict[str, object], phrase: str) -> None:
    with pytest.raises(ValidationError, match=phrase):
        CascadeConfig.model_validate(config)


def test_ab_split_is_stable_and_follows_the_shares() -> None:
    store = CascadeStore(CascadeConfig(variants={"a": variant(), "b": variant(0.5)}, split={"a": 0.8, "b": 0.2}))
    picks = [store.pick(f"req-{i}")[0] for i in range(2000)]
    assert 0.75 < picks.count("a") / 2000 < 0.85
    assert all(store.pick(f"req-{i}")[0] == picks[i] for i in range(50))
    assert 0 <= share_point("x") < 1
    assert store.pick("anything", forced="b")[0] == "b"
    with pytest.raises(BadInput, match="unknown cascade variant 'c'"):
        store.pick("x", forced="c")
