"""`python -m bench ingest_throughput`: images ingested through `POST /v1/media` until their jobs are done,
vs the same model calls made directly, on tiny and on real-size models.

Real processes on this machine: the cnn and clip services (loaded, one torch thread each), the gateway with
storage (embedded Postgres + pgvector, Redis) and a cnn-only cascade, and the worker with BLIP-2 analysis
off (`WORKER_IMAGE_ANALYSIS=false`), so an image costs a cnn classification and a clip embedding either
way. Baseline: one client posting the same images straight to the cnn and clip services in batches of 16.
The ingest is timed from the first upload to the last job done (uploads from 8 client threads). Tiny
models: once with one job at a time (`WORKER_CONCURRENCY=1`) and once with the defaults; they measure the
overhead (CPU ms per image by process). Real-size models (EfficientNet-Lite0, CLIP ViT-B/32 sizes): the
defaults. Target, judged on the real-size models: ingest throughput >= 0.7x the baseline's.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

from bench.report import write_section
from tests.support.models import tiny_model_dir
from tests.support.processes import ServiceProcess
from tests.support.storage_env import WorkerProcess, fresh_database, shared_postgres, shared_redis_url
from worker.settings import WorkerSettings

IMAGES = 200
REAL_IMAGES = 64  # real-size models: ~0.2 s of CPU per image here; keeps the benchmark to a few minutes
BATCH = 16
UPLOAD_THREADS = 8
TARGET = 0.7
PROCESSES = ("cnn", "clip", "gateway", "worker", "postgres")
CNN_ONLY = {"variants": {"a": {"stages": [{"kind": "cnn", "service": "cnn"}]}}}


def images(count: int, seed: int) -> list[bytes]:
    """Distinct 224×224 JPEGs (distinct hashes, so none is a duplicate upload)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        pixels = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8).repeat(8, axis=0).repeat(8, axis=1)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def direct(cnn_url: str, clip_url: str, data: list[bytes]) -> float:
    """Seconds for one client to classify and embed every image, batches of 16."""
    encoded = [base64.b64encode(item).decode("ascii") for item in data]
    with httpx.Client(timeout=300) as client:
        started = time.perf_counter()
        for start in range(0, len(encoded), BATCH):
            batch = encoded[start:start + BATCH]
            client.post(f"{cnn_url}/v1/classify", json={"images": batch, "top_k": 5}).raise_for_status()
            client.post(f"{clip_url}/v1/embed/image", json={"images": batch}).raise_for_status()
        return time.perf_counter() - started


def ingest(gateway_url: str, data: list[bytes]) -> tuple[float, int]:
    """Seconds from the first upload until every job has ended, and how many ended `done`."""
    with httpx.Client(base_url=gateway_url, timeout=300) as client:
        before = _count(client, "done"), _count(client, "failed")
        started = time.perf_counter()

        def upload(item: bytes) -> None:
            client.post("/v1/media", files={"file": ("image.jpg", item)}).raise_for_status()

        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            list(pool.map(upload, data))
        while True:
            done, failed = _count(client, "done") - before[0], _count(client, "failed") - before[1]
            if done + failed >= len(data):
                return time.perf_counter() - started, done
            time.sleep(1.0)  # the polling costs the gateway and Postgres work too


class CpuMeter:
    """CPU seconds (user + system, children included) each named process tree used between two readings."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        totals = {}
        for name, process in self.processes.items():
            total = 0.0
            for member in [process, *process.children(recursive=True)]:
                try:
                    times = member.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
            totals[name] = total
        return totals

    def used(self) -> dict[str, float]:
        end = self._read()
        return {name: end[name] - self.start[name] for name in end}


def postgres_pid() -> int:
    return int((shared_postgres().data_dir / "postmaster.pid").read_text().split()[0])


def _count(client: httpx.Client, state: str) -> int:
    answer = client.get("/v1/jobs", params={"state": state, "kind": "ingest", "limit": 1})
    answer.raise_for_status()
    return int(answer.json()["total"])


@dataclass(frozen=True)
class ModelSet:
    name: str
    cnn: Path
    clip: Path
    images: int
    worker_runs: tuple[tuple[str, dict[str, str]], ...]  # (label, extra worker settings)


@dataclass
class SetResult:
    images: int
    baseline_s: float
    runs: dict[str, tuple[float, int]] = field(default_factory=dict)  # label: (seconds, jobs done)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # label: process: CPU seconds


def model_sets() -> list[ModelSet]:
    from bench.clip_batching import build_clip
    from bench.peer_serving import CACHE
    from services.cnn.lite import build as build_lite

    lite0 = CACHE / "cnn-lite0"
    if not (lite0 / "mediamesh.json").exists():
        build_lite(lite0, "lite0")
    return [
        ModelSet("tiny", tiny_model_dir("cnn"), tiny_model_dir("clip"), IMAGES,
                 (("one job at a time", {"WORKER_CONCURRENCY": "1"}), ("defaults", {}))),
        ModelSet("real-size", lite0, build_clip(CACHE / "clip-vit-b32-v1"), REAL_IMAGES, (("defaults", {}),)),
    ]


def run_set(models: ModelSet, folder: Path) -> SetResult:
    # one torch thread each: with torch's default (a thread per core) every paced request of one image
    # ends in OpenMP spin-waiting, about 15x the request's own CPU time on a machine with 2 cores
    cnn = ServiceProcess("services.cnn.app:create_app", {"CNN_MODEL_PATH": str(models.cnn), "CNN_TORCH_THREADS": "1"},
                         folder / "cnn.log")
    clip = ServiceProcess("services.clip.app:create_app",
                          {"CLIP_MODEL_PATH": str(models.clip), "CLIP_TORCH_THREADS": "1"}, folder / "clip.log")
    with cnn, clip:
        for service in (cnn, clip):
            httpx.post(service.url + "/v1/model/load", timeout=300).raise_for_status()
        (folder / "cascade.json").write_text(json.dumps(CNN_ONLY))
        env = {"DATABASE_URL": fresh_database(), "REDIS_URL": shared_redis_url(),
               "MEDIAMESH_QUEUE": f"bench:{uuid.uuid4().hex[:10]}", "MEDIAMESH_HOME": str(folder / "home"),
               "GATEWAY_SERVICES": json.dumps({"cnn": {"url": cnn.url, "kind": "cnn"},
                                               "clip": {"url": clip.url, "kind": "clip"}}),
               "GATEWAY_CASCADE_CONFIG": str(folder / "cascade.json"), "GATEWAY_POLL_INTERVAL_S": "30"}
        with ServiceProcess("gateway.app:create_app", env, folder / "gateway.log") as gateway:
            worker_env = {**env, "GATEWAY_URL": gateway.url, "WORKER_IMAGE_ANALYSIS": "false",
                          "WORKER_METRICS_PORT": "0", "WORKER_MIGRATE_ON_START": "false"}
            direct(cnn.url, clip.url, images(BATCH * 2, seed=99))  # warm-up
            pids = {name: process.proc.pid for name, process in (("cnn", cnn), ("clip", clip), ("gateway", gateway))
                    if process.proc is not None} | {"postgres": postgres_pid()}
            meter = CpuMeter(pids)
            result = SetResult(models.images, direct(cnn.url, clip.url, images(models.images, seed=1)))
            result.cpu["baseline"] = meter.used()
            for seed, (label, extra) in enumerate(models.worker_runs, start=2):
                worker = WorkerProcess({**worker_env, **extra}, folder / f"worker-{seed}.log").start()
                try:
                    ingest(gateway.url, images(8, seed=1000 + seed))  # warm-up: connections, first queries
                    assert worker.proc is not None
                    meter = CpuMeter({**pids, "worker": worker.proc.pid})
                    result.runs[label] = ingest(gateway.url, images(models.images, seed=seed))
                    result.cpu[label] = meter.used()
                finally:
                    worker.stop()
    return result


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for models in model_sets():
            results[models.name] = run_set(models, Path(tmp) / models.name)
            print(models.name, "done")
    report(results)


OVERHEAD_NOTE = """

Why the real-size models judge it: the tiny models' work is {tiny_base:.1f} ms of CPU per image, so any
ingest that uploads over HTTP, records in Postgres and queues in Redis is bound by its own overhead,
whatever it does. The tiny rows measure that overhead: {tiny_total:.1f} ms per image ({tiny_ratio:.2f}× the
baseline's throughput), {tiny_overhead:.1f} ms of it outside the services. With real-size models the same
overhead sits beside {real_base:.0f} ms of model work per image ({real_total:.0f} ms in all, ingested); a ratio
above 1 there comes from the worker's concurrent jobs keeping cnn and clip busy at once, on both cores,
where the one baseline client calls them in turn.
What cut the overhead (the run before, 2026-12-03: gateway 23.8, worker 32.4, Postgres 11.6, 78.8 ms per
image in all): the worker writes a job's results, its item's outcome and `done` in one transaction that
first checks the job still runs (a cancel no earlier write saw stores nothing), loads the item in the
transaction that starts the job, and writes a stage only once it has lasted `WORKER_PROGRESS_DELAY_S`
(0.5 s; the first stage at once, so a job shows what it does and a long stage always shows) — three
transactions for a fast job instead of eight; a pooled connection is pinged only after 2 s idle, not on
every checkout; the gateway checks an uploaded image by reading all its data without a full decode (a
JPEG at 1/8 scale: a truncated file is still refused) and inserts its record without a lookup first (a
duplicate is found by the refused insert). py-spy of the worker and gateway during the tiny run
(2026-12-03) still has most samples in psycopg and SQLAlchemy (an ORM UPDATE or a short transaction costs
1.5–2 ms of CPU here), then in the model calls' HTTP; the gateway's in the upload's two inserts, the
file's fsync and the cascade's stored answer. Earlier: jobs run concurrently, their clip images batched
across jobs ({speedup:.1f}× over one job at a time in this run), one torch thread per service."""

MISS_NOTE = """

It misses by {miss:.0%}: the services spend {real_services:.0f} of the {real_total:.0f} ms an ingested image
costs ({real_service_factor:.2f}× the baseline's {real_service_base:.0f} ms: the cascade sends cnn one image per
request, and the services share the two cores with the gateway, the worker and Postgres)."""


def _per_image(result: SetResult, run: str, names: tuple[str, ...] = PROCESSES) -> float:
    return 1000 * sum(result.cpu[run].get(name, 0.0) for name in names) / result.images


def report(results: dict[str, SetResult]) -> None:
    defaults = WorkerSettings.model_fields
    rows, cpu_rows = [], []
    for name, result in results.items():
        rows.append(f"| {name} | cnn + clip directly, batches of {BATCH} (baseline) | {result.baseline_s:.2f} | "
                    f"{result.images / result.baseline_s:.1f} | 1.00 | – |")
        for label, (seconds, done) in result.runs.items():
            rows.append(f"| {name} | ingest, worker {label} | {seconds:.2f} | {result.images / seconds:.1f} | "
                        f"{result.baseline_s / seconds:.2f} | {done}/{result.images} |")
        cpu_rows += [f"| {name} | {label} | " + " | ".join(f"{_per_image(result, label, (n,)):.1f}" for n in PROCESSES)
                     + f" | {_per_image(result, label):.1f} |" for label in result.cpu]
    print("\n".join(rows + cpu_rows))
    tiny, real = results["tiny"], results["real-size"]
    ratio = real.baseline_s / real.runs["defaults"][0]
    services = ("cnn", "clip")
    note = OVERHEAD_NOTE.format(
        tiny_base=_per_image(tiny, "baseline"), tiny_total=_per_image(tiny, "defaults"),
        tiny_ratio=tiny.baseline_s / tiny.runs["defaults"][0],
        tiny_overhead=_per_image(tiny, "defaults") - _per_image(tiny, "defaults", services),
        real_base=_per_image(real, "baseline"), real_total=_per_image(real, "defaults"),
        speedup=tiny.runs["one job at a time"][0] / tiny.runs["defaults"][0])
    if ratio < TARGET:
        note += MISS_NOTE.format(
            miss=1 - ratio / TARGET, real_services=_per_image(real, "defaults", services),
            real_total=_per_image(real, "defaults"), real_service_base=_per_image(real, "baseline", services),
            real_service_factor=_per_image(real, "defaults", services) / max(_per_image(real, "baseline", services),
                                                                            1e-9))
    verdict = "meets" if ratio >= TARGET else "misses"
    load = psutil.getloadavg()[0]
    write_section("ingest_throughput", f"""
## Ingest throughput: `POST /v1/media` until done vs the model calls alone

Distinct 224×224 JPEGs on two model sets: **tiny** (the test suite's models; {IMAGES} images) and
**real-size** ({REAL_IMAGES} images; cnn: EfficientNet-Lite0 with its real ImageNet weights, as in
`bench peer_serving`; clip: CLIP ViT-B/32 sizes with random weights, as in `bench clip_batching`).
Baseline: one client posting the images straight to the cnn and clip services (loaded,
`<P>TORCH_THREADS=1`: torch's default of one thread per core spin-waits after every small request, about
15× that request's own CPU time here) in batches of {BATCH}.
Ingest: the same images uploaded through the gateway ({UPLOAD_THREADS} client threads; stored by hash,
checked, recorded in Postgres, queued in Redis) and processed by the worker — cnn-only cascade
classification and clip embedding, BLIP-2 analysis off — timed from the first upload until the last job
is done. "Defaults" is the worker as shipped: `WORKER_CONCURRENCY={defaults["concurrency"].default}` jobs at
once, their images sent to clip together (up to `WORKER_BATCH_MAX={defaults["batch_max"].default}`,
`WORKER_BATCH_WAIT_MS={defaults["batch_wait_ms"].default:g}`). Every process shares this machine's cores
(load average {load:.1f} on {psutil.cpu_count()} cores at the end; other work was running too, so absolute
times are noisy — each ratio is taken within one run).

| models | path | seconds | images/s | × baseline throughput | jobs done |
|---|---|---|---|---|---|
{chr(10).join(rows)}

CPU milliseconds per image, by process (children included; Redis, shared with other work, left out):

| models | run | {" | ".join(PROCESSES)} | total |
|---|---|---|---|---|---|---|---|
{chr(10).join(cpu_rows)}

The target is judged on the real-size models: there the ingest with the defaults runs at **{ratio:.2f}×** the
baseline's throughput, so it {verdict} the target (≥ {TARGET}×).{note}
""")


if __name__ == "__main__":
    main()
