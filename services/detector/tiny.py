"""A tiny random-weight RT-DETR (the default detector's architecture), built offline, with the COCO labels."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessorPil, RTDetrResNetConfig

from services.detector.labels import COCO_LABELS

SEED = 2468
IMAGE_SIZE = 128


def tiny_config() -> RTDetrConfig:
    """RT-DETR's own ResNet backbone (no timm), four one-block stages, 32-wide encoder and decoder."""
    backbone = RTDetrResNetConfig(  # type: ignore[call-arg]  # out_indices: a BackboneConfigMixin property
        embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], layer_type="basic", out_indices=[2, 3, 4])
    return RTDetrConfig(  # type: ignore[call-arg]  # id2label/label2id go to PretrainedConfig
        backbone_config=backbone, use_pretrained_backbone=False, encoder_in_channels=[16, 32, 64],
        encoder_hidden_dim=32, encoder_ffn_dim=64, encoder_attention_heads=2, d_model=32,
        decoder_in_channels=[32, 32, 32], decoder_ffn_dim=64, decoder_layers=2, decoder_attention_heads=2,
        num_queries=30, num_denoising=0,
        id2label=dict(enumerate(COCO_LABELS)), label2id={name: i for i, name in enumerate(COCO_LABELS)},
    )


def build(dest: Path) -> Path:
    """`RTDetrForObjectDetection` + its (PIL) image processor in dest, loadable with `from_pretrained(dest)`."""
    torch.manual_seed(SEED)
    RTDetrForObjectDetection(tiny_config()).eval().save_pretrained(dest)
    RTDetrImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(dest)
    return dest
