"""The transformer engine: a Hugging Face causal LM with PEFT adapters, batched and streamed.

Nothing here imports torch at module level except the modules that `engine.start` imports,
so that `import bot` and config checking stay cheap.
"""
