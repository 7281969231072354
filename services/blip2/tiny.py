"""A tiny random-weight BLIP-2 (ViT + Q-Former + OPT), saved like `Salesforce/blip2-opt-2.7b`.

The folder loads with `Blip2ForConditionalGeneration.from_pretrained` and
`Blip2Processor.from_pretrained` exactly as the real one does: the tokenizer carries the
`<image>` token and the processor knows `num_query_tokens`, as transformers 5 expects.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    Blip2QFormerConfig,
    Blip2VisionConfig,
    BlipImageProcessor,
    GenerationConfig,
    OPTConfig,
)

from shared.kit.tiny_tokenizer import train_byte_level_bpe, wrap

SEED = 1234
IMAGE_SIZE = 32
NUM_QUERY_TOKENS = 4
# OPT's special tokens in OPT's order (<s>=0, <pad>=1, </s>=2, <unk>=3); BLIP-2 adds <image>.
SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<image>"]


def build_processor() -> Blip2Processor:
    tokenizer = wrap(
        train_byte_level_bpe(SPECIAL, vocab_size=512, bos="</s>"),
        bos_token="</s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
    )
    image_processor = BlipImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    return Blip2Processor(image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=NUM_QUERY_TOKENS)


def build_config(processor: Blip2Processor) -> Blip2Config:
    tokenizer = processor.tokenizer
    vision = Blip2VisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=8,
    )
    qformer = Blip2QFormerConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        encoder_hidden_size=32, cross_attention_frequency=1, vocab_size=len(tokenizer),
    )
    text = OPTConfig(
        vocab_size=len(tokenizer), hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=2,
        word_embed_proj_dim=32, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return Blip2Config(
        vision_config=vision.to_dict(), qformer_config=qformer.to_dict(), text_config=text.to_dict(),
        num_query_tokens=NUM_QUERY_TOKENS, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )


def build(dest: Path) -> Path:
    """Write the tiny BLIP-2 (weights, config, processor, tokenizer) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    processor = build_processor()
    torch.manual_seed(SEED)
    model = Blip2ForConditionalGeneration(build_config(processor)).eval()
    tokenizer = processor.tokenizer
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, max_new_tokens=16,
    )
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    return dest
