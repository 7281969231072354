"""`mediamesh ingest` and `mediamesh search` against a running gateway (storage routes) and worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediamesh.cli.main import app
from tests.support import media_samples as samples
from tests.support.storage_env import Stack, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("cli"))
    yield stack
    stack.stop()


def test_ingest_folder_then_skip_then_search(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    (folder / "nested").mkdir(parents=True)
    (folder / "red.png").write_bytes(samples.png("red", seed=21))
    (folder / "nested" / "blue.png").write_bytes(samples.png("blue", seed=22))
    (folder / "orders.json").write_bytes(samples.json_bytes())
    (folder / "readme.txt").write_text("not media")
    (folder / ".hidden.png").write_bytes(samples.png("green", seed=23))
    runner = CliRunner()

    first = runner.invoke(app, ["ingest", str(folder), "--wait", "--url", stack.url])
    output = " ".join(first.output.split())  # rich wraps long lines
    assert first.exit_code == 1, output  # readme.txt was rejected
    assert "3 queued, 0 already stored, 1 rejected" in output
    assert "readme.txt: 415" in output and "3 done (0 degraded), 0 failed" in output

    again = runner.invoke(app, ["ingest", str(folder / "red.png"), str(folder / "nested"), "--url", stack.url])
    assert again.exit_code == 0 and "0 queued, 2 already stored, 0 rejected" in again.output

    found = runner.invoke(app, ["search", "red things", "--kind", "image", "--url", stack.url], terminal_width=200)
    assert found.exit_code == 0, found.output
    rows = [line for line in found.output.splitlines() if "embedding" in line]
    assert len(rows) == 2 and "red" in rows[0] and "blue" in rows[1]


def test_ingest_reports_an_unreachable_gateway(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(samples.png("red"))
    result = CliRunner().invoke(app, ["ingest", str(tmp_path), "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "cannot reach the gateway" in result.output
