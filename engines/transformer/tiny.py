"""A tiny Llama-architecture chat model built from local text: the lesson's model, in seconds.

The tokenizer is a byte-level BPE trained on the same sentences the n-gram engine counts
(`engines.corpora`), so nothing is downloaded. The model is randomly initialised; `pretrain`
teaches it the shape of chat replies. Both are saved as a normal Hugging Face folder.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

log = logging.getLogger(__name__)

DATA = Path(__file__).parent / "data"
LANGS = ("en", "de")
SPECIAL = {"pad": "<|pad|>", "start": "<|im_start|>", "end": "<|im_end|>"}
VOCAB_SIZE = 2048
# Per language, the first sentences of the corpora (chat turns come before other text there):
# enough for a 2048-token vocabulary and minutes of pre-training, and built in seconds.
MAX_SENTENCES = 5000

# A few million parameters: big enough to learn word shapes, small enough for a CPU test.
SHAPE = dict(
    hidden_size=192,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=6,
    num_key_value_heads=2,
    max_position_embeddings=512,
)


def sentences(lang: str) -> list[str]:
    """Training sentences: the shared corpora when they exist, else the text shipped here."""
    try:
        from engines.corpora import sentences as corpus_sentences
    except ImportError:
        corpus_sentences = None
    try:
        found = corpus_sentences(lang) if corpus_sentences is not None else []
    except (ValueError, OSError):  # no corpus for this language, or its package is missing
        found = []
    if found:
        return list(found[:MAX_SENTENCES])
    lines = (DATA / f"tiny_{lang}.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def dialogues(lang: str) -> list[list[dict[str, str]]]:
    """Consecutive sentences as (user, assistant) exchanges: chat-shaped pre-training text."""
    lines = sentences(lang)
    return [
        [{"role": "user", "content": a}, {"role": "assistant", "content": b}]
        for a, b in itertools.pairwise(lines)
    ]


def train_tokenizer(texts: list[str], vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE (any text is encodable; no unknown token) with the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=SPECIAL["end"],
        pad_token=SPECIAL["pad"],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = (DATA / "chat_template.jinja").read_text(encoding="utf-8")
    return tokenizer


def build_model(tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **SHAPE,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def make_tiny(folder: Path, pretrain_steps: int = 0, progress=log.info) -> Path:
    """Build (and optionally pre-train) the tiny model and save it under `folder`."""
    conversations = [d for lang in LANGS for d in dialogues(lang)]
    progress(f"training a tokenizer on {len(conversations)} bundled conversations")
    tokenizer = train_tokenizer([m["content"] for d in conversations for m in d])
    model = build_model(tokenizer)
    params = sum(p.numel() for p in model.parameters())
    progress(f"built a {params / 1e6:.1f}M-parameter model; pre-training it for "
             f"{pretrain_steps} steps")
    if pretrain_steps > 0:
        from engines.transformer.pretrain import pretrain

        pretrain(model, tokenizer, conversations, pretrain_steps, progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    progress(f"saved a {params / 1e6:.1f}M-parameter model to {folder}")
    return folder
