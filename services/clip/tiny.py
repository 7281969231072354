"""A tiny random-weight CLIP, built offline: tiny towers, the real 512-d projection, a local tokenizer."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

SEED = 4321
IMAGE_SIZE = 64
NUM_MERGES = 300
# Enough English for a byte-pair vocabulary that splits prompts into word-like pieces.
CORPUS = """
a photo of a cat. a photo of a dog. a picture of a black cat on a table. a close-up photo of the
bird. a photo of a car on the street. the clip where someone says quarterly report. a cherry pit on
a conveyor belt. a clean cherry. a photo of a person. a photo of food on a plate. an image of the
sea and the sky. a tabby cat sleeping on a sofa. a siamese cat. a persian cat. a bengal cat. a
maine coon. an abyssinian cat. a red apple. a green tree. a white house in the snow. people at a
meeting. a screenshot of a document. a chart with numbers. a map of the city. music and speech.
"""


def learn_merges(text: str, count: int) -> list[tuple[str, str]]:
    """Plain byte-pair encoding over CLIP-style words (last symbol carries `</w>`)."""
    words = Counter(text.lower().replace(".", " .").split())
    split = {word: [*word[:-1], word[-1] + "</w>"] for word in words}
    merges: list[tuple[str, str]] = []
    while len(merges) < count:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, symbols in split.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += words[word]
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        for word, symbols in split.items():
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            split[word] = merged
    return merges


def tiny_tokenizer() -> CLIPTokenizer:
    alphabet = sorted(ByteLevel.alphabet())
    merges = learn_merges(CORPUS, NUM_MERGES)
    tokens = [*alphabet, *(c + "</w>" for c in alphabet), *("".join(m) for m in merges)]
    tokens = list(dict.fromkeys(tokens)) + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    # The tokenizers backend takes (left, right) pairs; the stub only knows the "left right" strings.
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)  # type: ignore[arg-type]


def tiny_config(vocab_size: int, projection_dim: int = 512) -> CLIPConfig:
    text = {"vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": vocab_size - 2,
            "eos_token_id": vocab_size - 1, "pad_token_id": vocab_size - 1}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": IMAGE_SIZE, "patch_size": 16}
    # the real models' 512 by default (ViT-B/32); 768 (ViT-L/14's) makes a second embedding space for tests
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def build(dest: Path, projection_dim: int = 512) -> Path:
    """`CLIPModel` + tokenizer + image processor in dest, loadable with `from_pretrained(dest)`."""
    torch.manual_seed(SEED)
    tokenizer = tiny_tokenizer()
    model = CLIPModel(tiny_config(len(tokenizer), projection_dim)).eval()
    model.save_pretrained(dest)
    processor = CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE},
                                      crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(dest)
    return dest
