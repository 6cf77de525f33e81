"""Offline learning from feedback: votes -> datasets -> LoRA training -> evaluation -> adapter.

Every step is a command of `python -m finetune`, run as its own process beside the bot; the
bot starts `python -m finetune run` and relays its JSON progress lines.
"""
