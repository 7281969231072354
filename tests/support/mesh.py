"""`mediamesh up` as a subprocess for tests: start it, wait for its processes, interrupt it, check leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import psutil

from tests.support.processes import REPO

CLI = [sys.executable, "-c", "from mediamesh.cli.main import app; app()"]


def run_cli(args: Sequence[str], env: Mapping[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=REPO, env=cli_env(env), capture_output=True, text=True,
                          timeout=timeout_s)


def cli_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "200", **extra}
    for name in ("DATABASE_URL", "REDIS_URL"):  # embedded servers unless the test passes its own
        if name not in extra:
            env.pop(name, None)
    return env


class MeshUp:
    """`mediamesh up ARGS` in its own session, output to a file; remembers every descendant it saw."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], output: Path) -> None:
        self.args = list(args)
        self.env = cli_env(env)
        self.output = output
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen: dict[int, psutil.Process] = {}

    def start(self) -> MeshUp:
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen([*CLI, "up", *self.args], cwd=REPO, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def remember_descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for child in children:
            self.seen.setdefault(child.pid, child)
        return children

    def wait_for(self, urls: Sequence[str], timeout_s: float) -> None:
        """Until every URL answers (any HTTP status), failing early if the launcher exits."""
        deadline = time.monotonic() + timeout_s
        pending = list(urls)
        while pending and time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"mediamesh up exited with {self.proc.returncode}:\n{self.text()}")
            self.remember_descendants()
            pending = [url for url in pending if not _answers(url)]
            time.sleep(0.25)
        if pending:
            raise AssertionError(f"not up after {timeout_s}s: {pending}\n{self.text()}")

    def wait_output(self, needle: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while needle not in self.text():
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not printed after {timeout_s}s:\n{self.text()}")
            self.remember_descendants()
            time.sleep(0.2)

    def interrupt(self, timeout_s: float = 60) -> int:
        """Ctrl-C as a terminal sends it (SIGINT to the launcher's whole process group); wait for the exit."""
        assert self.proc is not None
        self.remember_descendants()
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=timeout_s)

    def leftovers(self) -> list[str]:
        """Descendants seen at any time that still run (zombies count as gone)."""
        alive = []
        for pid, proc in self.seen.items():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
            except psutil.NoSuchProcess:
                continue
        return alive

    def kill_everything(self) -> None:
        """Last-resort clean-up after a failed test: nothing may outlive it."""
        if self.proc is not None and self.proc.poll() is None:
            self.remember_descendants()
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for proc in self.seen.values():
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1.0)
    except httpx.HTTPError:
        return False
    return True
