"""Video frames are found by seeking: the frames decoded grow with the samples taken, not with the video's
length in frames."""

from __future__ import annotations

from pathlib import Path

from tests.support import media_samples as samples
from worker.pipelines.video import sample_frames

FPS = 10


def video_file(tmp_path: Path, seconds: float) -> Path:
    path = tmp_path / f"clip-{seconds}.mp4"
    path.write_bytes(samples.video_mp4(seconds=seconds, fps=FPS, colors=("red", "blue", "yellow")))
    return path


def test_frames_are_taken_at_each_interval(tmp_path: Path) -> None:
    sampled = sample_frames(video_file(tmp_path, 3.0), interval_s=1.0, max_frames=10)
    assert [t for t, _ in sampled.frames] == [0.0, 1.0, 2.0]
    assert sampled.has_audio and all(png.startswith(b"\x89PNG") for _, png in sampled.frames)


def test_a_long_video_costs_its_samples_not_its_length(tmp_path: Path) -> None:
    """60 s at 10 fps is 600 frames; 4 samples decode about one key-frame interval each."""
    long_video = video_file(tmp_path, 60.0)
    sampled = sample_frames(long_video, interval_s=15.0, max_frames=10)
    assert [t for t, _ in sampled.frames] == [0.0, 15.0, 30.0, 45.0]
    assert sampled.decoded < 600 / 2, sampled.decoded
    few = sample_frames(long_video, interval_s=15.0, max_frames=2)
    assert few.decoded < sampled.decoded  # fewer samples, less decoding


def test_max_frames_caps_the_samples(tmp_path: Path) -> None:
    sampled = sample_frames(video_file(tmp_path, 3.0), interval_s=0.5, max_frames=2)
    assert [t for t, _ in sampled.frames] == [0.0, 0.5]
