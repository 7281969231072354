"""`mediamesh models pull` and `list`: offline says so quickly, pulls replace folders atomically."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mediamesh.cli.hub import HUB_MARKER, ignore_patterns_for, pull_model, pulled_from
from mediamesh.cli.main import app
from mediamesh.cli.models import TINY_MARKER
from tests.support.processes import free_port

runner = CliRunner()


def invoke(*args: str, **env: str) -> Any:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200", **env})
    result.flat = " ".join(result.output.split())
    return result


def make_tiny(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / TINY_MARKER).write_text("tiny")
    return folder


def test_pull_when_offline_says_it_cannot_and_points_at_tiny(tmp_path: Path) -> None:
    result = invoke("models", "pull", "--dest", str(tmp_path), HF_HUB_OFFLINE="1")
    assert result.exit_code == 1
    assert "HF_HUB_OFFLINE is set" in result.flat
    assert "Cannot pull blip2, whisper, llm, cnn, clip, detector without the hub" in result.flat
    assert "mediamesh models tiny" in result.flat
    assert list(tmp_path.iterdir()) == []


def test_pull_with_no_route_to_the_hub_fails_fast(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    started = time.monotonic()
    result = invoke("models", "pull", "--only", "clip", "--dest", str(tmp_path), HF_HUB_OFFLINE="0",
                    HF_ENDPOINT=dead)
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    assert f"cannot reach the Hugging Face hub at {dead}" in result.flat
    assert "Cannot pull clip without the hub" in result.flat


def test_pull_missing_only_needs_no_network_when_everything_is_there(tmp_path: Path) -> None:
    for name in ("cnn", "clip"):
        make_tiny(tmp_path / name)
    dead = f"http://127.0.0.1:{free_port()}"
    result = invoke("models", "pull", "--only", "cnn", "--only", "clip", "--missing-only", "--dest", str(tmp_path),
                    HF_HUB_OFFLINE="0", HF_ENDPOINT=dead)
    assert result.exit_code == 0, result.output
    assert "nothing to pull" in result.flat


def test_pull_refuses_unknown_services(tmp_path: Path) -> None:
    result = invoke("models", "pull", "--only", "bert", "--dest", str(tmp_path))
    assert result.exit_code == 2
    assert "unknown service(s) bert" in result.flat


def fake_snapshot(files: dict[str, str]) -> Any:
    calls: list[dict[str, Any]] = []

    def download(*, repo_id: str, local_dir: Path, **kwargs: Any) -> str:
        calls.append({"repo_id": repo_id, "local_dir": Path(local_dir), **kwargs})
        for name, text in files.items():
            (Path(local_dir) / name).write_text(text)
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True)
        return str(local_dir)

    download.calls = calls  # type: ignore[attr-defined]
    return download


def test_pull_model_replaces_a_tiny_model_and_records_where_it_came_from(tmp_path: Path) -> None:
    target = make_tiny(tmp_path / "clip")
    download = fake_snapshot({"config.json": '{"real": true}', "model.safetensors": "weights"})
    assert pull_model("openai/clip-vit-base-patch32", target, endpoint="http://hub", download=download) == target
    assert download.calls[0]["local_dir"] == tmp_path / ".clip.partial"
    assert download.calls[0]["endpoint"] == "http://hub"
    assert "*.msgpack" in download.calls[0]["ignore_patterns"]
    assert sorted(p.name for p in target.iterdir()) == [HUB_MARKER, "config.json", "model.safetensors"]
    assert pulled_from(target) == "openai/clip-vit-base-patch32"
    assert not (tmp_path / ".clip.partial").exists()


def test_duplicate_pickled_weights_are_skipped_only_when_safetensors_exist() -> None:
    assert "*.bin" in ignore_patterns_for(["config.json", "model-00001-of-00002.safetensors", "pytorch_model.bin"])
    assert "*.bin" not in ignore_patterns_for(["config.json", "model.bin", "vocabulary.txt"])  # CTranslate2 Whisper
    assert {"*.msgpack", "tf_model*", "*.onnx"} <= set(ignore_patterns_for([]))


def test_a_failed_pull_leaves_the_working_model_in_place(tmp_path: Path) -> None:
    target = make_tiny(tmp_path / "clip")

    def broken(**kwargs: Any) -> str:
        (Path(kwargs["local_dir"]) / "model.safetensors.incomplete").write_text("half")
        raise ConnectionError("network went away")

    with pytest.raises(ConnectionError):
        pull_model("openai/clip-vit-base-patch32", target, download=broken)
    assert (target / TINY_MARKER).exists()
    assert (tmp_path / ".clip.partial" / "model.safetensors.incomplete").exists()  # resumed by the next pull


def test_list_shows_missing_tiny_and_real(tmp_path: Path) -> None:
    make_tiny(tmp_path / "cnn")
    pull_model("openai/clip-vit-base-patch32", tmp_path / "clip", download=fake_snapshot({"config.json": "{}"}))
    result = invoke("models", "list", "--dest", str(tmp_path))
    assert result.exit_code == 0
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 2}
    assert "tiny (random weights)" in rows["cnn"]
    assert "real (openai/clip-vit-base-patch32)" in rows["clip"]
    assert "missing" in rows["blip2"] and "missing" in rows["llm"] and "missing" in rows["whisper"]
