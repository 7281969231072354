"""The llm service over HTTP with the tiny random-weight Phi-3: contract, generation, OpenAI chat,
and structured endpoints whose JSON must validate even though the model's weights are random."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from shared.schemas.llm import EnrichClusterResponse, JsonSchemaAnalysis
from tests.support.processes import ServiceProcess

APP = "services.llm.app:create_app"
MAX_NEW_TOKENS = 48


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[[str], Path]) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("llm")
    env = {"LLM_MODEL_PATH": str(tiny_model("llm")), "LLM_DEVICE": "cpu", "LLM_MAX_NEW_TOKENS": str(MAX_NEW_TOKENS),
           "LLM_STRUCTURED_SHORT_CHARS": "12", "LLM_STRUCTURED_LONG_CHARS": "24", "LLM_STRUCTURED_MAX_ITEMS": "4"}
    with ServiceProcess(APP, env, logs / "llm.log") as proc:
        yield proc


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=120) as c:
        c.post("/v1/model/load").raise_for_status()
        yield c


def greedy(client: httpx.Client, prompt: str, **extra: object) -> dict:
    answer = client.post("/generate", json={"prompt": prompt, "temperature": 0, "max_tokens": 24, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_load_generate_unload_cycle(service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.url, timeout=120) as c:
        c.post("/v1/model/unload")
        before = c.get("/v1/model").json()
        assert before["state"] == "unloaded"  # on demand: nothing loads by itself
        refused = c.post("/generate", json={"prompt": "hello"})
        assert refused.status_code == 503 and "not loaded" in refused.json()["detail"]
        loaded = c.post("/v1/model/load").json()
        assert loaded["state"] == "loaded" and loaded["memory_bytes"] > 100_000
        assert 0.9 * before["estimated_bytes"] <= loaded["memory_bytes"] <= 1.1 * before["estimated_bytes"]
        info = c.get("/v1/model").json()
        assert info["tiny"] is True and info["details"]["architecture"] == "Phi3ForCausalLM"
        first = greedy(c, "Describe a cat.")
        assert 1 <= first["tokens_generated"] <= 24 and first["finish_reason"] in ("stop", "length")
        assert greedy(c, "Describe a cat.")["text"] == first["text"]  # greedy decoding is deterministic
        freed = c.post("/v1/model/unload").json()
        assert freed["freed_bytes"] >= 0.95 * loaded["memory_bytes"]
        assert c.get("/v1/model").json()["memory_bytes"] == 0
        again = c.post("/generate", json={"prompt": "hello"})
        assert again.status_code == 503 and "POST /v1/model/load" in again.json()["detail"]
        c.post("/v1/model/load")
        assert greedy(c, "Describe a cat.")["text"] == first["text"]


def test_length_limit_and_stop_sequences(client: httpx.Client) -> None:
    full = greedy(client, "Tell me a story.", max_tokens=MAX_NEW_TOKENS)
    assert full["finish_reason"] == "length" and full["tokens_generated"] == MAX_NEW_TOKENS
    text = full["text"]
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    cut = greedy(client, "Tell me a story.", max_tokens=MAX_NEW_TOKENS, stop_sequences=[stop])
    assert cut["text"] == text[: text.find(stop)]
    assert cut["finish_reason"] == "stop" and cut["tokens_generated"] < MAX_NEW_TOKENS


@pytest.mark.parametrize(
    ("path", "payload", "phrase"),
    [
        ("/generate", {"prompt": ""}, "at least 1 character"),
        ("/generate", {"prompt": "   "}, "prompt is blank"),
        ("/generate", {"prompt": "hi", "max_tokens": MAX_NEW_TOKENS + 1}, "LLM_MAX_NEW_TOKENS"),
        ("/analyze-json-schema", {"json_samples": ['{"id": 1,']}, "json_samples[0] is not valid JSON"),
        ("/analyze-json-schema", {"json_samples": [{"id": 1}, {}]}, "json_samples[1] is an empty object"),
        ("/analyze-json-schema", {"json_samples": [[1, 2]]}, "must be a JSON object"),
        ("/analyze-json-schema", {"json_samples": []}, "at least 1 item"),
        ("/enrich-cluster", {"cluster_name": ""}, "at least 1 character"),
        ("/v1/chat/completions", {"messages": []}, "at least 1 item"),
        ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, "'system', 'user'"),
    ],
    ids=["empty-prompt", "blank-prompt", "too-many-tokens", "malformed-sample", "empty-sample", "array-sample",
         "no-samples", "no-cluster-name", "no-messages", "bad-role"],
)
def test_bad_input_gets_a_clear_4xx(client: httpx.Client, path: str, payload: dict, phrase: str) -> None:
    answer = client.post(path, json=payload)
    assert answer.status_code == 422, answer.text
    assert phrase in json.dumps(answer.json()["detail"])
    assert greedy(client, "still there?")["tokens_generated"] >= 1


def test_malformed_request_body_is_422(client: httpx.Client) -> None:
    answer = client.post("/analyze-json-schema", content=b'{"json_samples": [',
                         headers={"content-type": "application/json"})
    assert answer.status_code == 422


SAMPLE_SETS = [
    ([{"id": 1, "customer_name": "Ada", "order_date": "2024-01-31", "total": 12.5},
      {"id": 2, "customer_name": "Bob", "order_date": "2024-02-01", "total": 3}], "Order data from e-commerce"),
    ([{"sensor": "t1", "reading": {"value": 21.5, "unit": "C"}, "tags": ["lab"]},
      '{"sensor": "t2", "reading": {"value": 19}, "extra": null}'], "IoT readings"),
    ([{"name": "Zoë", "ünïcode key": "✓", "nested": {"deep": [1, {"x": 2}]}}], ""),
]


@pytest.mark.parametrize(("samples", "comment"), SAMPLE_SETS, ids=["orders", "iot", "unicode"])
def test_analyze_json_schema_always_validates(client: httpx.Client, samples: list, comment: str) -> None:
    answer = client.post("/analyze-json-schema", json={"json_samples": samples, "user_comment": comment})
    assert answer.status_code == 200, answer.text
    analysis = JsonSchemaAnalysis.model_validate(answer.json())
    keys = {k for s in samples for k in (json.loads(s) if isinstance(s, str) else s)}
    assert set(analysis.fields) == keys
    assert set(analysis.indexes) <= keys and len(analysis.indexes) == len(set(analysis.indexes))


@pytest.mark.parametrize(
    "cluster",
    [
        {"cluster_name": "Black Cats", "description": "Photos of black cats indoors",
         "sample_captions": ["A black cat on a table", "a cat sleeping on a sofa"]},
        {"cluster_name": "Quarterly reports"},
        {"cluster_name": "日本の寺", "description": "temples", "sample_captions": ["a red gate", "a pagoda"]},
    ],
    ids=["cats", "bare", "non-ascii"],
)
def test_enrich_cluster_always_validates(client: httpx.Client, cluster: dict) -> None:
    answer = client.post("/enrich-cluster", json=cluster)
    assert answer.status_code == 200, answer.text
    enriched = EnrichClusterResponse.model_validate(answer.json())
    assert enriched.folder_path.count("/") == len(enriched.hierarchy) + 1


def test_openai_client_chat_plain_and_streaming(service: ServiceProcess, client: httpx.Client) -> None:
    oai = openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in oai.models.list()] == ["llm"]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    plain = oai.chat.completions.create(model="phi", messages=messages, temperature=0, max_tokens=20)
    choice = plain.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length") and plain.usage.completion_tokens <= 20

    chunks = list(oai.chat.completions.create(model="phi", messages=messages, temperature=0, max_tokens=20,
                                              stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed == choice.message.content  # same greedy answer, delivered piece by piece
    assert len(chunks) > 3 and chunks[-1].choices[0].finish_reason == choice.finish_reason

    stop = streamed[len(streamed) // 2 : len(streamed) // 2 + 2]
    cut = oai.chat.completions.create(model="phi", messages=messages, temperature=0, max_tokens=20, stop=[stop],
                                      stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in cut) == streamed[: streamed.find(stop)]


def test_openai_client_json_schema_response_format(service: ServiceProcess, client: httpx.Client) -> None:
    oai = openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0)
    schema = {"type": "object", "properties": {"colour": {"type": "string", "maxLength": 8},
                                               "ok": {"type": "boolean"}}, "required": ["colour", "ok"]}
    reply = oai.chat.completions.create(
        model="phi", messages=[{"role": "user", "content": "A colour as JSON."}], temperature=0, max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "colour", "schema": schema}},
    )
    document = json.loads(reply.choices[0].message.content)
    assert set(document) == {"colour", "ok"} and isinstance(document["ok"], bool) and len(document["colour"]) <= 8


def test_not_loaded_is_503_for_chat_too(service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as c:
        c.post("/v1/model/unload")
        for stream in (False, True):
            answer = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                          "stream": stream})
            assert answer.status_code == 503 and "not loaded" in answer.json()["detail"]


def test_client_leaving_mid_stream_frees_the_request(service: ServiceProcess, client: httpx.Client) -> None:
    body = {"messages": [{"role": "user", "content": "Write a long story."}], "stream": True,
            "max_tokens": MAX_NEW_TOKENS, "temperature": 0}
    with httpx.Client(base_url=service.url, timeout=60) as other, other.stream("POST", "/v1/chat/completions",
                                                                                json=body) as answer:
        assert answer.status_code == 200
        assert next(answer.iter_lines()).startswith("data: ")  # then hang up
    deadline = time.monotonic() + 10
    while client.get("/v1/model").json()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get("/v1/model").json()["in_flight"] == 0
    assert client.post("/v1/model/unload", timeout=20).json()["state"] == "unloaded"
