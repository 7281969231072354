"""Byte-level BPE tokenizers trained offline on a small built-in corpus, for tiny test models.

Byte-level means every string can be encoded (all 256 bytes are in the alphabet), so JSON,
punctuation and any language round-trip; constrained decoding can spell anything it must.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

CORPUS = """
A black cat sitting on a wooden table. A dog running in the park on a sunny day.
A photo of a city street at night with cars and people. Mountains and a lake under a blue sky.
A plate of food with vegetables, rice and meat. A person riding a bicycle on the road.
Indoor photos of a kitchen, a living room and a bedroom. Outdoor landscapes, beaches and forests.
The quarterly report shows revenue, customers, orders and products for the year.
{"id": 1, "name": "order", "customer_name": "Ada", "order_date": "2024-01-31", "total": 12.5,
 "items": [{"sku": "A-1", "qty": 2}], "tags": ["pet", "animal"], "active": true, "note": null}
table_name storage_type sql jsonb reasoning fields indexes hierarchy folder_path extended_tags
relationships search_description cluster_name description primary_category confidence similar_to parent
Question: what is in the picture? Answer: a cat. Is this indoors or outdoors? It is outdoors.
The quick brown fox jumps over the lazy dog. 0123456789 _-/.,:;!?()[]{}<>"'@#%&*+=
"""


def train_byte_level_bpe(
    special_tokens: Sequence[str], vocab_size: int = 600, *, bos: str | None = None
) -> Tokenizer:
    """A GPT-2 style byte-level BPE; with `bos`, every encoding starts with it (as OPT and Llama do)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([line for line in CORPUS.splitlines() if line.strip()] * 4, trainer=trainer)
    if bos is not None:
        bos_id = tokenizer.token_to_id(bos)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def wrap(tokenizer: Tokenizer, **special: str) -> PreTrainedTokenizerFast:
    """A transformers tokenizer around `tokenizer`; `special` names bos/eos/unk/pad tokens."""
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, clean_up_tokenization_spaces=False, **special)
