"""What the worker uploads to whisper: a video's sound track copied out of it, and a large sound file
re-encoded to 16 kHz mono Opus — both read by whisper's own decoder with the length of the original."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.audio import decode_audio
from tests.support import media_samples as samples
from worker.pipelines.audio import copy_sound_track, encode_for_whisper


def seconds(path: Path) -> float:
    return decode_audio(path.read_bytes(), max_seconds=3600).duration_s


def test_a_video_sound_track_is_copied_without_its_pictures(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(samples.video_mp4(seconds=3.0))
    track = tmp_path / "sound.mka"
    copy_sound_track(video, track)
    assert track.read_bytes()[:4] == b"\x1a\x45\xdf\xa3" and track.stat().st_size < video.stat().st_size
    # MP4's edit list trims the AAC encoder's priming (1024 samples, 64 ms here); the Matroska copy keeps it
    assert seconds(track) == pytest.approx(seconds(video), abs=0.1)


def test_a_large_sound_file_is_re_encoded_smaller_at_the_same_length(tmp_path: Path) -> None:
    wav = tmp_path / "memo.wav"
    wav.write_bytes(samples.spoken_wav("the quarterly report is ready"))
    compact = tmp_path / "memo.ogg"
    encode_for_whisper(wav, compact)
    assert compact.read_bytes()[:4] == b"OggS" and compact.stat().st_size < wav.stat().st_size / 5
    decoded = decode_audio(compact.read_bytes(), max_seconds=3600)
    assert decoded.duration_s == pytest.approx(seconds(wav), abs=0.05) and not decoded.is_silent
