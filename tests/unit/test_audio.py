"""shared.audio: every container to 16 kHz mono float32; bad files to 4xx with a clear message."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.audio import SAMPLE_RATE, NoAudioTrack, decode_audio
from shared.http.errors import BadInput, PayloadTooLarge, UnsupportedMedia
from tests.support.speech import CODECS, ESPEAK, encode, pcm_wav, silent_video, tone, video_with_audio

LIMIT_S = 600.0


@pytest.fixture(scope="module")
def stereo_tone() -> np.ndarray:
    return tone(1.0, rate=44_100, channels=2, freq=440.0)


@pytest.mark.parametrize("fmt", list(CODECS))
def test_every_container_decodes_to_16khz_mono(fmt: str, stereo_tone: np.ndarray) -> None:
    decoded = decode_audio(encode(stereo_tone, 44_100, fmt), max_seconds=LIMIT_S)
    assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 1
    assert decoded.duration_s == pytest.approx(1.0, abs=0.06)  # codecs pad a little (aac, opus)
    assert not decoded.is_silent
    # still a 440 Hz tone after resampling and lossy codecs: the spectrum peaks there
    spectrum = np.abs(np.fft.rfft(decoded.samples[: SAMPLE_RATE // 2]))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / (SAMPLE_RATE // 2)
    assert peak_hz == pytest.approx(440, abs=4)


def test_wav_samples_are_exact() -> None:
    mono = tone(0.5, rate=SAMPLE_RATE, channels=1, amp=0.25)
    decoded = decode_audio(encode(mono, SAMPLE_RATE, "wav"), max_seconds=LIMIT_S)
    np.testing.assert_allclose(decoded.samples, mono[0], atol=1 / 16_000)  # only s16 rounding


def test_video_audio_track(stereo_tone: np.ndarray) -> None:
    decoded = decode_audio(video_with_audio(stereo_tone, 44_100), max_seconds=LIMIT_S)
    assert decoded.duration_s == pytest.approx(1.0, abs=0.06) and not decoded.is_silent


def test_silence_and_empty_audio_are_not_errors() -> None:
    silent = decode_audio(pcm_wav(np.zeros(SAMPLE_RATE)), max_seconds=LIMIT_S)
    assert silent.duration_s == pytest.approx(1.0) and silent.is_silent
    hiss = decode_audio(pcm_wav(np.full(SAMPLE_RATE, 1e-4)), max_seconds=LIMIT_S)
    assert hiss.is_silent
    empty = decode_audio(pcm_wav(np.zeros(0)), max_seconds=LIMIT_S)
    assert empty.samples.size == 0 and empty.is_silent


@pytest.mark.parametrize("fmt", ["wav", "ogg", "flac", "mp3"])
def test_truncated_files_are_refused(fmt: str, stereo_tone: np.ndarray) -> None:
    raw = encode(stereo_tone, 44_100, fmt)
    with pytest.raises(BadInput, match="truncated"):
        decode_audio(raw[: len(raw) // 2], max_seconds=LIMIT_S)


def test_cut_inside_the_header_is_refused() -> None:
    raw = encode(tone(1.0), 44_100, "mp3")
    with pytest.raises((BadInput, UnsupportedMedia)):
        decode_audio(raw[:100], max_seconds=LIMIT_S)


def test_not_audio_is_415_with_the_formats_we_take() -> None:
    with pytest.raises(UnsupportedMedia, match="mp3, wav") as caught:
        decode_audio(b"this is a text file, not a song\n" * 20, max_seconds=LIMIT_S)
    assert caught.value.status_code == 415


def test_silent_video_has_no_audio_track() -> None:
    with pytest.raises(NoAudioTrack, match="no audio track, only video") as caught:
        decode_audio(silent_video(), max_seconds=LIMIT_S)
    assert caught.value.status_code == 415


def test_images_playlists_and_concat_lists_are_not_opened(tmp_path: Path) -> None:
    """Only audio/video demuxers are reachable: nothing that reads other files named inside the upload."""
    secret = tmp_path / "secret.wav"
    secret.write_bytes(encode(tone(1.0, channels=1), 44_100, "wav"))
    png = io.BytesIO()
    Image.new("RGB", (16, 16), (255, 0, 0)).save(png, "PNG")
    uploads = [
        png.getvalue(),
        f"ffconcat version 1.0\nfile {secret}\n".encode(),
        f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile://{secret}\n#EXT-X-ENDLIST\n".encode(),
    ]
    for raw in uploads:
        with pytest.raises(UnsupportedMedia, match="not an audio or video file"):
            decode_audio(raw, max_seconds=LIMIT_S)


def test_empty_bytes_are_422() -> None:
    with pytest.raises(BadInput, match="empty"):
        decode_audio(b"", max_seconds=LIMIT_S)


def test_audio_over_the_length_limit_is_413() -> None:
    with pytest.raises(PayloadTooLarge, match="limit of 2 s"):
        decode_audio(encode(tone(3.0, channels=1), 44_100, "flac"), max_seconds=2)


def test_stream_sized_wav_header_is_accepted() -> None:
    """Writers that stream (espeak-ng to a pipe, arecord) leave the data size at 0xFFFFFFFF."""
    raw = bytearray(encode(tone(0.5, rate=SAMPLE_RATE, channels=1), SAMPLE_RATE, "wav"))
    data_at = raw.find(b"data")
    raw[data_at + 4:data_at + 8] = b"\xff\xff\xff\xff"
    assert decode_audio(bytes(raw), max_seconds=LIMIT_S).duration_s == pytest.approx(0.5, abs=0.01)


def test_wav_from_a_pipe_is_accepted() -> None:
    """`espeak-ng --stdout` writes about 2 GiB as both RIFF and data sizes: a placeholder, not a truncation."""
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    speech = subprocess.run([ESPEAK, "--stdout", "the quick brown fox"], capture_output=True, check=True).stdout
    decoded = decode_audio(speech, max_seconds=LIMIT_S)
    assert 0.5 < decoded.duration_s < 5 and not decoded.is_silent
