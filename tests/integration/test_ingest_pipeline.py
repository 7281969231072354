"""Ingest end to end through real processes: the storage routes in a gateway process (a test double for
the model endpoints, see tests/support/fake_gateway.py), the worker, Postgres + pgvector, Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support import media_samples as samples
from tests.support.storage_env import Stack, start_stack

TABLES = ("media", "jobs", "classifications", "image_embeddings", "image_analyses", "transcripts",
          "video_frames", "json_documents")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("ingest"))
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def all_services_up(stack: Stack) -> None:
    stack.configure(down=[], delay_s={})


def counts(stack: Stack) -> dict[str, int]:
    url = stack.env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as connection:
        return {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # noqa: S608


def ingest(stack: Stack, name: str, data: bytes) -> tuple[dict, dict, dict]:
    with stack.client() as client:
        accepted = client.post("/v1/media", files={"file": (name, data, "application/octet-stream")})
        assert accepted.status_code == 202, accepted.text
        job = stack.wait_job(accepted.json()["job_id"])
        media = client.get(f"/v1/media/{accepted.json()['media_id']}").json()
    return accepted.json(), job, media


def test_image_gets_cascade_embedding_and_analysis(stack: Stack) -> None:
    accepted, job, media = ingest(stack, "photo.txt", samples.png("green", seed=1))  # the name is not trusted
    assert accepted["kind"] == "image" and accepted["mime"] == "image/png" and not accepted["duplicate"]
    assert job["state"] == "done" and job["progress"] == 1.0 and job["attempts"] == 1
    assert media["status"] == "ready" and media["degraded_reasons"] == []
    assert media["classification"]["label"] == "green" and media["classification"]["trace"]["stages"]
    assert media["embedding"] == {"model": "fake-clip", "dim": 512}
    assert media["analysis"]["caption"] == "a green square on a plain background"


def test_spoken_wav_gets_a_transcript_with_segments(stack: Stack) -> None:
    accepted, job, media = ingest(stack, "memo.wav", samples.spoken_wav("the quarterly report is ready"))
    assert accepted["kind"] == "audio" and job["state"] == "done"
    assert media["transcript"]["text"] == "the quarterly report is ready"
    assert media["transcript"]["segments"][0]["end"] > 0


def test_video_frames_go_through_the_image_path_and_sound_through_whisper(stack: Stack) -> None:
    video = samples.video_mp4(seconds=3.0, colors=("red", "blue", "yellow"))
    accepted, job, media = ingest(stack, "clip.mp4", video)
    assert accepted["kind"] == "video" and job["state"] == "done", job
    assert [frame["t"] for frame in media["frames"]] == [0.0, 1.0, 2.0]
    labels = []
    with stack.client() as client:
        for frame in media["frames"]:
            detail = client.get(f"/v1/media/{frame['media_id']}").json()
            assert detail["parent_id"] == media["id"] and detail["embedding"]["dim"] == 512
            labels.append(detail["classification"]["label"])
    assert labels == ["red", "blue", "yellow"]
    assert media["transcript"]["text"] == "the quarterly report is ready"
    sent = httpx.post(f"{stack.url}/fake/config", json={}, timeout=10).json()["whisper_files"][-1]
    assert sent["head"] == "1a45dfa3" and sent["size"] < len(video)  # its sound track only (Matroska), a file


def test_upload_streamed_past_the_cap_is_413_and_leaves_nothing(stack: Stack) -> None:
    """A chunked upload (no Content-Length) is counted as it arrives and refused at the cap."""
    before = counts(stack)
    files_before = sorted(p.name for p in Path(stack.home, "media").rglob("*") if p.is_file())
    cap = int(stack.env["GATEWAY_MAX_UPLOAD_BYTES"])
    boundary = "mediamesh-test-boundary"

    def body() -> Iterator[bytes]:
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
               "Content-Type: audio/wav\r\n\r\n").encode()
        for _ in range(cap // 65536 + 2):
            yield bytes(65536)
        yield f"\r\n--{boundary}--\r\n".encode()

    with stack.client() as client:
        response = client.post("/v1/media", content=body(),
                               headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert counts(stack) == before
    assert sorted(p.name for p in Path(stack.home, "media").rglob("*") if p.is_file()) == files_before


def test_json_document_gets_a_schema_analysis(stack: Stack) -> None:
    accepted, job, media = ingest(stack, "orders.bin", samples.json_bytes())
    assert accepted["kind"] == "json" and job["state"] == "done"
    assert media["json_document"]["document"][0]["customer"] == "Ada"
    assert set(media["json_document"]["analysis"]["fields"]) == {"order_id", "customer", "total", "items"}


def test_same_file_twice_is_one_record(stack: Stack) -> None:
    data = samples.png("white", seed=7)
    first, _, _ = ingest(stack, "a.png", data)
    before = counts(stack)
    with stack.client() as client:
        again = client.post("/v1/media", files={"file": ("b.png", data)}).json()
    assert again["duplicate"] is True
    assert (again["media_id"], again["job_id"]) == (first["media_id"], first["job_id"])
    assert counts(stack) == before


def test_down_service_degrades_then_reprocess_completes(stack: Stack) -> None:
    stack.configure(down=["blip2"])
    accepted, job, media = ingest(stack, "x.png", samples.png("yellow", seed=3))
    assert job["state"] == "done"
    assert media["status"] == "degraded" and media["analysis"] is None
    assert media["degraded_reasons"] and media["degraded_reasons"][0].startswith("blip2: HTTP 503")
    assert media["classification"]["label"] == "yellow" and media["embedding"]["dim"] == 512  # kept what worked
    stack.configure(down=[])
    with stack.client() as client:
        rerun = client.post(f"/v1/media/{accepted['media_id']}/reprocess")
        assert rerun.status_code == 202
        assert stack.wait_job(rerun.json()["job_id"])["state"] == "done"
        media = client.get(f"/v1/media/{accepted['media_id']}").json()
    assert media["status"] == "ready" and media["degraded_reasons"] == []
    assert media["analysis"]["caption"].startswith("a yellow square") and len(media["jobs"]) == 2


@pytest.mark.parametrize(("name", "data", "status", "message"), [
    ("empty.png", b"", 422, "empty"),
    ("notes.png", b"plain text pretending to be a picture", 415, "not a file type"),
    ("cut.mp4", samples.video_mp4(seconds=3.0)[:20_000], 422, "truncated"),
    ("bad.json", b'{"orders": [1, 2,', 422, "malformed JSON"),
    ("huge.png", b"\x89PNG\r\n\x1a\n" + bytes(3_100_000), 413, "limit"),
])
def test_bad_input_is_a_clear_4xx_and_stores_nothing(stack: Stack, name: str, data: bytes, status: int,
                                                      message: str) -> None:
    before = counts(stack)
    files_before = sorted(p.name for p in Path(stack.home, "media").rglob("*") if p.is_file())
    with stack.client() as client:
        response = client.post("/v1/media", files={"file": (name, data)})
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert counts(stack) == before
    assert sorted(p.name for p in Path(stack.home, "media").rglob("*") if p.is_file()) == files_before


def test_unknown_ids_are_404(stack: Stack) -> None:
    with stack.client() as client:
        assert client.get("/v1/jobs/nope").status_code == 404
        assert client.get("/v1/media/nope").status_code == 404
        assert client.post("/v1/media/nope/reprocess").status_code == 404
