"""`python -m bench model_swaps`: how many swaps of the large models the worker's job ordering saves.

A mixed batch (images, voice memos, JSON documents, shuffled) is queued in Redis and taken by the worker's
own `JobPicker` (worker/ordering.py) — the code the worker runs — one job at a time. What the gateway
would hold is modelled here, not run: a budget where cnn, clip and whisper fit beside one large model but
BLIP-2 (images) and the llm (JSON) do not fit together, so loading one evicts the other (a swap). The
picker is told what is loaded, as `GET /v1/models` would tell it. First come, first served
(`WORKER_LOOKAHEAD=1`) against the defaults; also the longest any job was passed over (the bound on
deferral is `WORKER_MAX_DEFERRALS`).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter

from bench.report import write_section
from storage.queue import JobQueue, connect
from tests.support.storage_env import shared_redis_url
from worker.ordering import JobPicker, models_for
from worker.settings import WorkerSettings

MIX = {"image": 60, "audio": 20, "json": 20}
LARGE = frozenset({"blip2", "llm"})  # the budget holds one of them
SEEDS = range(5)


def shuffled_batch(seed: int) -> list[str]:
    kinds = [kind for kind, count in MIX.items() for _ in range(count)]
    random.Random(seed).shuffle(kinds)
    return kinds


def run(kinds: list[str], lookahead: int, max_deferrals: int) -> tuple[int, int]:
    """(swaps, most times one job was passed over) for the batch taken in the picker's order."""
    queue = JobQueue(connect(shared_redis_url()), f"bench-swaps:{uuid.uuid4().hex[:10]}")
    queue.ensure_group()
    kind_of = {}
    for index, kind in enumerate(kinds):
        kind_of[f"job{index}"] = kind
        queue.enqueue(f"job{index}")
    resident: set[str] = set()
    swaps, position, passed_over = 0, 0, Counter[str]()
    picker = JobPicker(queue, "bench", needs=lambda ids: {i: models_for(kind_of[i]) for i in ids},
                       loaded=lambda: set(resident), lookahead=lookahead, max_deferrals=max_deferrals,
                       visibility_ms=60_000, refresh_s=0.0)
    try:
        while (delivery := picker.next(block_ms=0)) is not None:
            for model in models_for(kind_of[delivery.job_id]) - resident:
                if model in LARGE and resident & LARGE:
                    resident -= LARGE
                    swaps += 1
                resident.add(model)
            index = int(delivery.job_id.removeprefix("job"))
            passed_over[delivery.job_id] = max(0, position - index)  # later than its place in the queue
            position += 1
            queue.ack(delivery.message_id)
            picker.done(delivery)
    finally:
        queue.client.delete(queue.stream, queue.delayed)
    return swaps, max(passed_over.values())


def main() -> None:
    settings = WorkerSettings()
    rows, fifo_total, ordered_total = [], 0, 0
    for seed in SEEDS:
        kinds = shuffled_batch(seed)
        fifo, _ = run(kinds, lookahead=1, max_deferrals=settings.max_deferrals)
        ordered, deferred = run(kinds, lookahead=settings.lookahead, max_deferrals=settings.max_deferrals)
        fifo_total, ordered_total = fifo_total + fifo, ordered_total + ordered
        rows.append(f"| {seed} | {fifo} | {ordered} | {fifo - ordered} | {deferred} |")
        print(f"seed {seed}: first come first served {fifo} swaps, ordered {ordered} swaps, "
              f"a job ran at most {deferred} places late")
    saved = fifo_total - ordered_total
    mix = ", ".join(f"{count} {kind}" for kind, count in MIX.items())
    write_section("model_swaps", f"""
## Large-model swaps saved by the worker's job ordering

A shuffled batch of {mix} jobs ({sum(MIX.values())} in all), taken one at a time by the worker's own
`JobPicker` from a Redis queue, under a modelled budget that holds cnn, clip and whisper beside **one** of
BLIP-2 (images) and the llm (JSON): a swap is loading one of those two while the other is resident. First
come, first served is `WORKER_LOOKAHEAD=1`; ordered is the defaults (`WORKER_LOOKAHEAD={settings.lookahead}`,
`WORKER_MAX_DEFERRALS={settings.max_deferrals}`). "Places late" is how much later than its queue position the
most-deferred job ran. Counts, not times: this does not depend on the machine.

| batch (seed) | swaps, first come first served | swaps, ordered | saved | most places late |
|---|---|---|---|---|
{chr(10).join(rows)}

Over {len(SEEDS)} batches: **{fifo_total} swaps first come, first served; {ordered_total} ordered — {saved} saved
({saved / max(fifo_total, 1):.0%})**. With a real BLIP-2 and Phi-3.5 a swap costs a load of several
seconds (see `llm_load`), so each saved swap is that much time.
""")


if __name__ == "__main__":
    main()
