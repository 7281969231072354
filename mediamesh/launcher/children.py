"""One child process of the launcher: its own process group, its own log file, stop with a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from mediamesh.launcher.plan import ProcessSpec


class ChildState(StrEnum):
    waiting = "waiting"  # for the process it starts after
    starting = "starting"
    up = "up"
    restarting = "restarting"
    failed = "failed"  # died more often than the restart limit; left down
    stopped = "stopped"


class ChildProcess:
    """A ProcessSpec brought to life. Each child leads its own process group so that Ctrl-C in the
    terminal reaches only the launcher, and stopping a child also stops anything it spawned."""

    def __init__(self, spec: ProcessSpec, log_path: Path, base_env: Mapping[str, str], cwd: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self.env = {**base_env, **spec.env}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.state = ChildState.waiting
        self.restarts = 0
        self.exit_codes: list[int] = []
        self.next_restart_at: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"\n=== {stamp} mediamesh up: starting {' '.join(self.spec.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.spec.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.state = ChildState.starting
        self.next_restart_at = None

    def exit_code(self) -> int | None:
        """None while running (or never started), else the exit status (negative: killed by a signal)."""
        if self.proc is None:
            return None
        return self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:  # the group is already gone
            pass

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def stop_all(children: Iterable[ChildProcess], timeout_s: float) -> list[str]:
    """SIGTERM every child's group at once, wait up to timeout_s, then SIGKILL what is left.

    Returns the names of the children that had to be killed.
    """
    running = [c for c in children if c.proc is not None]
    for child in running:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for child in running:
        assert child.proc is not None
        try:
            child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    killed = []
    for child in running:
        assert child.proc is not None
        # A group can outlive its leader (a grandchild), so the group gets SIGKILL either way.
        if child.proc.poll() is None:
            killed.append(child.name)
        child.signal_group(signal.SIGKILL)
        child.proc.wait()
        child.state = ChildState.stopped
    return killed


def run_until_stopped(argv: list[str], log_path: Path, cwd: Path, env: Mapping[str, str],
                      should_stop: Callable[[], bool], poll_s: float = 0.2) -> int:
    """Run a one-off command (output appended to log_path); SIGTERM its group if a stop is requested."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    while proc.poll() is None:
        if should_stop():
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                return proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                return proc.wait()
        time.sleep(poll_s)
    return proc.returncode
