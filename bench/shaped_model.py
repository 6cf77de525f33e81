"""A model of SmolLM2-135M-Instruct's shape with random weights and the tiny model's tokenizer:
the GPU bench's kernels then have the real model's shapes (30 layers, hidden 576, 9 query and 3
key/value heads, MLP 1,536, vocabulary 49,152) where its weights cannot travel.

    python -m bench.shaped_model TINY_DIR OUT_DIR

The tokenizer's ids are a small part of the vocabulary; the embedding and output matrices still
have all 49,152 rows, so the last layer's matrix product and the sampling over the vocabulary
cost what they cost with the real model. Replies are noise: only speed and memory mean anything.
"""

from __future__ import annotations

import sys
from pathlib import Path

# From HuggingFaceTB/SmolLM2-135M-Instruct's config.json.
SMOLLM2_135M = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                    max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                    tie_word_embeddings=True)


def build(tiny: Path, out: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    torch.manual_seed(0)
    config = LlamaConfig(bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **SMOLLM2_135M)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    print(f"a random {params / 1e6:.0f}M-parameter model of SmolLM2-135M's shape in {out}")
    return out


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]))
