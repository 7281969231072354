"""The gateway's memory accounting against NVML's figure for the whole card (needs a CUDA GPU).

Every model service runs on the one GPU under the launcher's supervisor (so restart-mode unloads
come back), in the modes docs/gpu-budget.md chooses; the gateway budgets 6 GiB
(`GATEWAY_BUDGET_BYTES`) whatever the card has. The script loads and unloads each model in turn,
then in the cascade's order and in the ingest's order, and at every step compares the gateway's
`reserved_bytes` with what NVML says the card holds beyond what it held before the mesh started.

Targets (issue 14): the accounting is never below the real use by more than 5 %; after a restart
unload at least 95 % of what the model held is free again; filling the budget to its limit gives
no allocation failure. Without CUDA it says so, measures nothing, and writes that into its section.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.report import write_section

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3
RESTART = ("blip2", "whisper", "llm")  # the plan of docs/gpu-budget.md
PINNED = ("cnn", "clip")
CASCADE_ORDER = ["cnn", "clip", "blip2"]
INGEST_ORDER = ["cnn", "clip", "blip2", "whisper", "llm"]  # image (classify, embed, caption), audio, JSON
TOLERANCE = 0.05


def no_gpu_reason() -> str | None:
    import torch

    from shared.kit.nvml import nvml

    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    if not nvml().available():
        return f"NVML is not available ({nvml().error})"
    return None


@dataclass
class Step:
    what: str
    accounted: int  # the gateway's reserved_bytes
    real: int  # NVML: used on the card now minus used before the mesh started

    @property
    def below_by(self) -> float:
        return max(self.real - self.accounted, 0) / self.real if self.real else 0.0


def main() -> None:
    reason = no_gpu_reason()
    if reason is not None:
        print(f"bench gpu_budget: skipped, {reason}. It needs a CUDA GPU with the real models in "
              "$MEDIAMESH_HOME/models (mediamesh models pull); nothing was measured.", file=sys.stderr)
        write_section("gpu_budget", f"""## GPU budget: the gateway's accounting against NVML

**Not run: {reason} on this machine.** Nothing here is measured yet; the figures of
docs/gpu-budget.md stay marked "not yet measured" until this benchmark runs on a CUDA card
(`python -m bench gpu_budget` with the real models pulled). Targets: accounting never more than
5 % below NVML's use of the card; ≥ 95 % of a model's memory free again after a restart unload;
no allocation failure while a 6 GiB budget is filled to its limit.""")
        return
    run_on_gpu()


def run_on_gpu() -> None:
    from rich.console import Console

    from mediamesh.launcher.plan import PlanOptions, plan_mesh
    from mediamesh.launcher.supervisor import Supervisor
    from shared.config import mediamesh_home
    from shared.kit.nvml import nvml

    device = nvml().device(0)
    assert device is not None
    baseline = device.total_bytes - device.free_bytes
    home = mediamesh_home()
    plan = plan_mesh(PlanOptions(home=home, worker=False))
    env = {**os.environ, "GATEWAY_STORAGE_ENABLED": "false", "GATEWAY_BUDGET_BYTES": str(6 * GIB),
           "GATEWAY_PINNED": "[]", "GATEWAY_POLL_INTERVAL_S": "0.5", "GATEWAY_IDLE_TTL_S": "86400"}
    for name in RESTART:
        env[f"{name.upper()}_UNLOAD_MODE"] = "restart"
    for spec in plan.processes:
        env[f"{spec.name.upper()}_DEVICE"] = "cuda"
    logs = Path(tempfile.mkdtemp(prefix="bench-gpu-budget-"))
    stop = threading.Event()
    supervisor = Supervisor(plan, host="127.0.0.1", log_dir=logs, env=env, cwd=ROOT,
                            console=Console(file=io.StringIO()), should_stop=stop.is_set)
    supervisor.start_all()
    watcher = threading.Thread(target=supervisor.supervise, kwargs={"poll_s": 0.2}, daemon=True)
    try:
        if not supervisor.wait_until_up(600):
            raise SystemExit(f"the mesh did not come up; logs in {logs}")
        watcher.start()
        gateway = next(p for p in plan.processes if p.name == "gateway").base_url("127.0.0.1")
        steps, freed, failures = measure(httpx.Client(base_url=str(gateway), timeout=900), baseline)
    finally:
        stop.set()
        supervisor.stop()
    report(steps, freed, failures, device.name, device.total_bytes)


def measure(client: httpx.Client, baseline: int) -> tuple[list[Step], dict[str, float], list[str]]:
    from shared.kit.nvml import nvml

    steps: list[Step] = []
    freed: dict[str, float] = {}
    failures: list[str] = []
    names = [m["id"] for m in client.get("/v1/models").json()["data"]]

    def settle_and_record(what: str) -> None:
        time.sleep(1.5)  # three polls: the gateway has read every service's NVML figure
        device = nvml().device(0)
        assert device is not None
        real = device.total_bytes - device.free_bytes - baseline
        steps.append(Step(what, client.get("/v1/models").json()["reserved_bytes"], real))

    def load(name: str) -> None:
        answer = client.post(f"/v1/models/{name}/load")
        if answer.status_code >= 500 and "out of memory" in answer.text.lower():
            failures.append(f"{name}: {answer.text[:200]}")
        settle_and_record(f"load {name} ({answer.status_code})")

    def unload(name: str) -> None:
        held = next(m for m in client.get("/v1/models").json()["data"] if m["id"] == name)["reserved_bytes"]
        before = nvml().device(0)
        client.post(f"/v1/models/{name}/unload")
        after = nvml().device(0)
        if name in RESTART and held and before is not None and after is not None:
            freed[name] = (after.free_bytes - before.free_bytes) / held
        settle_and_record(f"unload {name}")

    for name in names:  # each in turn
        load(name)
        unload(name)
    for order_name, order in (("cascade", CASCADE_ORDER), ("ingest", INGEST_ORDER)):
        for name in order:  # the budget makes room as it goes
            if name in names:
                load(name)
        steps.append(Step(f"— end of the {order_name} order", steps[-1].accounted, steps[-1].real))
        for name in names:
            unload(name)
    for name in names:  # fill the 6 GiB budget: every model asked for, the gateway evicting as it must
        load(name)
    return steps, freed, failures


def mib(n: int) -> str:
    return f"{n / 1024**2:,.0f} MiB"


def report(steps: list[Step], freed: dict[str, float], failures: list[str], card: str, total: int) -> None:
    worst = max(steps, key=lambda s: s.below_by)
    rows = "\n".join(f"| {s.what} | {mib(s.accounted)} | {mib(s.real)} | {s.below_by:.1%} |" for s in steps)
    freed_rows = ", ".join(f"{name} {share:.0%}" for name, share in freed.items()) or "none measured"
    accounting_ok = worst.below_by <= TOLERANCE
    freed_ok = bool(freed) and all(share >= 1 - TOLERANCE for share in freed.values())
    section = f"""## GPU budget: the gateway's accounting against NVML

Card: {card}, {mib(total)}; budget 6 GiB (`GATEWAY_BUDGET_BYTES`); restart on unload: {", ".join(RESTART)}.
"real" is NVML's use of the whole card minus what it held before the mesh started.

| step | gateway accounts | real (NVML) | accounting below real by |
|---|---|---|---|
{rows}

* Accounting never more than 5 % below the real use: **{"meets" if accounting_ok else "misses"}**
  (worst: {worst.below_by:.1%} at "{worst.what}").
* Freed by restart unloads (share of what the model held): {freed_rows}:
  **{"meets" if freed_ok else "misses"}** the 95 % target.
* Allocation failures while the budget was filled: {len(failures)}
  **{"meets" if not failures else "misses"}**{": " + "; ".join(failures) if failures else ""}.
"""
    path = write_section("gpu_budget", section)
    print(json.dumps({"worst_below": worst.below_by, "freed": freed, "failures": failures}), f"→ {path}")
