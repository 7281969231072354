"""Start the mesh's child processes, wait until they are up, restart the ones that die, stop them all."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from mediamesh.launcher.children import ChildProcess, ChildState, stop_all
from mediamesh.launcher.plan import MeshPlan
from shared.config import RESTART_EXIT_CODE

STATE_STYLE = {
    ChildState.waiting: "dim", ChildState.starting: "yellow", ChildState.up: "green", ChildState.restarting: "yellow",
    ChildState.failed: "red", ChildState.stopped: "dim",
}
WORKER_GRACE_S = 2.0  # a child without a health URL counts as up once it has lived this long


class StopFlag:
    """A signal handler that only records the signal; the launcher's loops check `requested`."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


class Supervisor:
    def __init__(self, plan: MeshPlan, *, host: str, log_dir: Path, env: Mapping[str, str], cwd: Path,
                 console: Console, max_restarts: int = 3, stop_timeout_s: float = 10.0,
                 should_stop: Callable[[], bool] = lambda: False) -> None:
        self.host = host
        self.console = console
        self.max_restarts = max_restarts
        self.stop_timeout_s = stop_timeout_s
        self.should_stop = should_stop
        self.children = [ChildProcess(spec, log_dir / f"{spec.name}.log", env, cwd) for spec in plan.processes]
        self.started_at: dict[str, float] = {}
        self.http = httpx.Client(timeout=1.0, trust_env=False)  # local addresses: never through a proxy

    def start_all(self) -> None:
        """Start every child that waits for nobody; the others start from tick() once theirs is up."""
        for child in self.children:
            if child.spec.after is None or child.spec.after not in self._names():
                self._start(child)

    def wait_until_up(self, timeout_s: float, poll_s: float = 0.25) -> bool:
        """Poll until every child is up (or failed); a live table shows progress. True if all are up."""
        deadline = time.monotonic() + timeout_s
        with Live(self.table(), console=self.console, refresh_per_second=4, transient=True) as live:
            while (time.monotonic() < deadline and not self.should_stop()
                   and any(self._pending(c) for c in self.children)):
                self.tick()
                live.update(self.table())
                time.sleep(poll_s)
        self.console.print(self.table())
        return all(c.state is ChildState.up for c in self.children)

    def supervise(self, poll_s: float = 0.5) -> None:
        """Run until should_stop() says so, restarting children that die."""
        while not self.should_stop():
            self.tick()
            time.sleep(poll_s)

    def tick(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.state in (ChildState.failed, ChildState.stopped):
                continue
            code = child.exit_code()
            if child.state is ChildState.waiting:
                if self._state_of(child.spec.after) is ChildState.up:
                    self._start(child)
            elif child.state is ChildState.restarting:
                if child.next_restart_at is not None and now >= child.next_restart_at:
                    if child.exit_codes[-1:] != [RESTART_EXIT_CODE]:
                        child.restarts += 1  # only crashes count towards the limit
                    self._start(child)
            elif code is not None:
                self._handle_exit(child, code, now)
            elif child.state is ChildState.starting and self._is_up(child, now):
                child.state = ChildState.up
                if child.restarts:
                    self.console.print(f"[green]{child.name} is up again[/] (restart {child.restarts})")

    def stop(self) -> None:
        killed = stop_all(self.children, self.stop_timeout_s)
        if killed:
            names = ", ".join(killed)
            self.console.print(f"[yellow]killed after {self.stop_timeout_s:.0f}s without exiting:[/] {names}")
        self.http.close()

    def table(self) -> Table:
        table = Table("process", "state", "pid", "address", "restarts", title="mediamesh")
        table.add_column("log", overflow="fold")
        for child in self.children:
            style = STATE_STYLE[child.state]
            address = child.spec.base_url(self.host) or "-"
            pid = str(child.pid) if child.alive() else "-"
            table.add_row(child.name, f"[{style}]{child.state}[/]", pid, address, str(child.restarts),
                          str(child.log_path))
        return table

    def _start(self, child: ChildProcess) -> None:
        child.start()
        self.started_at[child.name] = time.monotonic()

    def _pending(self, child: ChildProcess) -> bool:
        return child.state in (ChildState.waiting, ChildState.starting, ChildState.restarting)

    def _names(self) -> set[str]:
        return {c.name for c in self.children}

    def _state_of(self, name: str | None) -> ChildState | None:
        return next((c.state for c in self.children if c.name == name), None)

    def _is_up(self, child: ChildProcess, now: float) -> bool:
        url = child.spec.health_url(self.host)
        if url is None:
            return now - self.started_at[child.name] >= WORKER_GRACE_S
        try:
            self.http.get(url)  # any HTTP answer: the process serves (a degraded gateway answers 503)
        except httpx.HTTPError:
            return False
        return True

    def _handle_exit(self, child: ChildProcess, code: int, now: float) -> None:
        child.exit_codes.append(code)
        if code == RESTART_EXIT_CODE:  # a service's restart-mode unload: planned, not a crash; back at once
            child.state, child.next_restart_at = ChildState.restarting, now
            self.console.print(f"{child.name} ended to free the GPU (unload mode restart); starting it again")
            return
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        if child.restarts < self.max_restarts:
            delay = 2.0 ** child.restarts
            child.state = ChildState.restarting
            child.next_restart_at = now + delay
            self.console.print(f"[red]{child.name} {how}[/]; restarting in {delay:.0f}s "
                               f"({child.restarts + 1}/{self.max_restarts}). Log: {child.log_path}")
            return
        child.state = ChildState.failed
        self.console.print(f"[bold red]{child.name} {how} and has been restarted {child.restarts} times; "
                           f"giving up on it.[/] Last lines of {child.log_path}:")
        self.console.print(child.log_tail(), markup=False, highlight=False)
