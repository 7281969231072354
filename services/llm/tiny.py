"""A tiny random-weight Phi-3 with Phi-3.5-mini's special tokens and chat template, built offline."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

from shared.kit.tiny_tokenizer import train_byte_level_bpe, wrap

SEED = 4321
SPECIAL = ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>", "<|system|>"]

# microsoft/Phi-3.5-mini-instruct's template (tokenizer_config.json), unchanged.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)


def build_tokenizer():  # noqa: ANN201  (a PreTrainedTokenizerFast)
    tokenizer = wrap(
        train_byte_level_bpe(SPECIAL, vocab_size=640),
        bos_token="<s>", eos_token="<|endoftext|>", unk_token="<unk>", pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build(dest: Path) -> Path:
    """Write the tiny Phi-3 (weights, config, generation config, tokenizer with chat template) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    config = Phi3Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
        bos_token_id=ids("<s>"), eos_token_id=ids("<|endoftext|>"), pad_token_id=ids("<|endoftext|>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = Phi3ForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids("<s>"), pad_token_id=ids("<|endoftext|>"),
        eos_token_id=[ids("<|end|>"), ids("<|endoftext|>")],  # as Phi-3.5: a turn ends with <|end|>
    )
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest
