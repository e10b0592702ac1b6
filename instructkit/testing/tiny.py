"""Tiny random-initialised models, built fully offline, for tests, benchmarks and the README example.

``build_tiny_llava()`` gives a LLaVA (CLIP vision tower + Llama language model) a few hundred kilobytes
in size with its own byte-level BPE tokenizer (trained in memory), CLIP image processor and
``LlavaProcessor``; ``build_tiny_text_lm()`` gives a Llama causal LM on the same tokenizer.
``save_tiny_llava(path)`` / ``save_tiny_text_lm(path)`` write them where ``from_pretrained`` and the CLI can
load them. No network, no hub.

The role markers and EOS are special tokens so that a chat rendering splits into the same tokens as its
parts tokenised one by one: that is what lets tests build an independent per-turn label reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

IMAGE_TOKEN = "<image>"
BOS, EOS, PAD, UNK = "<s>", "<|end|>", "<pad>", "<unk>"
SYSTEM, USER, ASSISTANT = "<|system|>", "<|user|>", "<|assistant|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, SYSTEM, USER, ASSISTANT, IMAGE_TOKEN]

# Built-in chat template of the tiny models; `{% generation %}` marks the loss-bearing span (the answer
# and its EOS). Content may be a string or a list of {type: image|text} parts (processor style).
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{% if m['content'] is string %}{% set text = m['content'] %}"
    "{% else %}{% set ns = namespace(t='') %}"
    "{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}{% set ns.t = ns.t + '<image>' %}"
    "{% else %}{% set ns.t = ns.t + p['text'] %}{% endif %}"
    "{% endfor %}{% set text = ns.t %}{% endif %}"
    "{% if m['role'] == 'assistant' %}<|assistant|>{% generation %}{{ text }}{{ eos_token }}{% endgeneration %}"
    "{% else %}<|{{ m['role'] }}|>{{ text }}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_CORPUS = [
    "What is in the image? A cat sitting on a red mat next to a window.",
    "Describe the picture in detail. There are two dogs playing with a ball in the park.",
    "Question: how many people are there? Short answer: three.",
    "The quick brown fox jumps over the lazy dog. 0123456789 yes no left right up down.",
    "Explain why the sky is blue. Sunlight scatters off air molecules, and blue light scatters most.",
    "Write a haiku about autumn. Red leaves drift and fall, the cold wind sings through the trees.",
    "Answer the question using a single word or phrase. Answer with the option's letter.",
]


def build_tokenizer(vocab_size: int = 384) -> Any:
    """A byte-level BPE fast tokenizer trained in memory on a small fixed corpus (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        extra_special_tokens=[SYSTEM, USER, ASSISTANT, IMAGE_TOKEN])
    fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


def build_tiny_llava(seed: int = 0, *, hidden: int = 32, layers: int = 2, image_size: int = 16,
                     patch_size: int = 8, vocab_size: int = 384) -> tuple[Any, Any]:
    """(model, processor): a random LLaVA whose images become (image_size/patch_size)**2 tokens."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = build_tokenizer(vocab_size)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=TINY_CHAT_TEMPLATE, image_token=IMAGE_TOKEN)
    vision = CLIPVisionConfig(hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                              num_attention_heads=2, image_size=image_size, patch_size=patch_size,
                              projection_dim=hidden)
    text = _llama_config(LlamaConfig, tokenizer, hidden, layers)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         vision_feature_select_strategy="default", vision_feature_layer=-1,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    _tie_generation_config(model, tokenizer)
    return model, processor


def build_tiny_text_lm(seed: int = 0, *, hidden: int = 32, layers: int = 2, vocab_size: int = 384
                       ) -> tuple[Any, Any]:
    """(model, tokenizer): a random Llama causal LM on the tiny tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(vocab_size)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_llama_config(LlamaConfig, tokenizer, hidden, layers))
    _tie_generation_config(model, tokenizer)
    return model, tokenizer


def _llama_config(cls: Any, tokenizer: Any, hidden: int, layers: int) -> Any:
    return cls(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
               num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
               max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
               tie_word_embeddings=False)


def _tie_generation_config(model: Any, tokenizer: Any) -> None:
    gc = model.generation_config
    gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = (tokenizer.bos_token_id, tokenizer.eos_token_id,
                                                         tokenizer.pad_token_id)


def save_tiny_llava(path: str | Path, seed: int = 0, **kw: Any) -> Path:
    """Write a tiny LLaVA and its processor to ``path``; load it back with the Auto classes."""
    path = Path(path)
    model, processor = build_tiny_llava(seed, **kw)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def save_tiny_text_lm(path: str | Path, seed: int = 0, **kw: Any) -> Path:
    path = Path(path)
    model, tokenizer = build_tiny_text_lm(seed, **kw)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_tiny_images(root: str | Path, names: list[str], size: int = 24, seed: int = 0) -> list[str]:
    """Small deterministic RGB PNGs under ``root`` (for tests and examples); returns the names."""
    import random

    from PIL import Image

    root = Path(root)
    rng = random.Random(seed)
    for name in names:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        data = bytes(rng.randrange(256) for _ in range(size * size * 3))
        Image.frombytes("RGB", (size, size), data).save(target)
    return names


if __name__ == "__main__":  # python -m instructkit.testing.tiny DIR [--text]: write a tiny model for examples
    import sys

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit("usage: python -m instructkit.testing.tiny DIR [--text]")
    saved = (save_tiny_text_lm if "--text" in sys.argv else save_tiny_llava)(args[0])
    print(f"wrote a tiny random {'text LM' if '--text' in sys.argv else 'LLaVA'} to {saved}")
