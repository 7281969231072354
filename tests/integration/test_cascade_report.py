"""A/B evaluation through the gateway with real Postgres: stored answers, feedback, the report, counters.

Stand-in cnn and clip services (tests/integration/test_gateway_cascade.py): on a red image the
cnn says cat 0.6, clip says dog. Variant `a` stops at the cnn (cat), `b` always asks clip (dog).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.test_gateway_cascade import RED
from tests.support.processes import ServiceProcess
from tests.support.storage_env import fresh_database, shared_redis_url

APP = "tests.integration.test_gateway_cascade:stand_in_app"
CONFIG = {"variants": {
    "a": {"stages": [{"kind": "cnn", "service": "cnn", "escalate": {"threshold": 0.5}},
                     {"kind": "clip", "service": "clip"}]},
    "b": {"stages": [{"kind": "cnn", "service": "cnn", "weight": 0.4, "escalate": {"threshold": 1.0}},
                     {"kind": "clip", "service": "clip", "weight": 0.6}]}},
    "split": {"a": 0.5, "b": 0.5}}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    logs = tmp_path_factory.mktemp("report")
    procs = [ServiceProcess(APP, {"LINEAR_NAME": name, "LINEAR_MODEL_PATH": str(logs)}, logs / f"{name}.log")
             for name in ("cnn", "clip")]
    started = [p.start() for p in procs]
    env = {"GATEWAY_SERVICES": json.dumps({p.env["LINEAR_NAME"]: {"url": p.url, "kind": p.env["LINEAR_NAME"]}
                                           for p in started}),
           "DATABASE_URL": fresh_database(), "REDIS_URL": shared_redis_url(),
           "MEDIAMESH_QUEUE": "test:report", "MEDIAMESH_HOME": str(logs / "home")}
    try:
        with ServiceProcess("gateway.app:create_app", env, logs / "gateway.log") as proc, \
                httpx.Client(base_url=proc.url, timeout=30) as client:
            assert client.put("/v1/cascade/config", json=CONFIG).status_code == 200
            yield client
    finally:
        for p in started:
            p.stop()


def test_feedback_scores_each_variant_in_the_report(gw: httpx.Client) -> None:
    for i in range(8):
        answer = gw.post("/v1/classify", json={"image": RED, "request_id": f"r{i}",
                                               "variant": "ab"[i % 2]}).json()
        assert answer["label"] == ("cat" if i % 2 == 0 else "dog")
        given = gw.post(f"/v1/classify/r{i}/feedback", json={"label": "dog"})
        assert given.status_code == 200 and given.json()["results"] == 1
    gw.post("/v1/classify", json={"image": RED, "request_id": "calibrating", "mode": "always"})  # not stored
    report = {v["variant"]: v for v in gw.get("/v1/cascade/report").json()["variants"]}
    a, b = report["a"], report["b"]
    assert (a["results"], a["with_feedback"], a["accuracy"]["value"]) == (4, 4, 0.0)
    assert (b["results"], b["with_feedback"], b["accuracy"]["value"]) == (4, 4, 1.0)
    assert a["escalation_rate"]["value"] == 0.0 and b["escalation_rate"]["value"] == 1.0
    assert a["stage_calls"] == {"value": 1.0, "low": 1.0, "high": 1.0, "n": 4} and b["stage_calls"]["value"] == 2.0
    assert b["accuracy"]["low"] < 1.0 == b["accuracy"]["high"] and a["review_rate"]["value"] == 0.0
    only_b = gw.get("/v1/cascade/report", params={"variant": "b"}).json()["variants"]
    assert [v["variant"] for v in only_b] == ["b"]


def test_unknown_request_feedback_is_404_and_counters_are_exported(gw: httpx.Client) -> None:
    missing = gw.post("/v1/classify/nope/feedback", json={"label": "dog"})
    assert missing.status_code == 404 and "no stored classify answer" in missing.json()["detail"]
    assert gw.post("/v1/classify/r0/feedback", json={"label": ""}).status_code == 422
    gw.post("/v1/classify", json={"image": RED, "request_id": "m1", "variant": "b"})
    metrics = gw.get("/metrics").text
    assert 'mediamesh_cascade_answers_total{decision="answer",label="dog",variant="b"}' in metrics
    assert 'mediamesh_cascade_stage_runs_total{decision="escalate",service="cnn",stage="cnn",variant="b"}' in metrics
    assert "mediamesh_cascade_stage_seconds_bucket" in metrics
