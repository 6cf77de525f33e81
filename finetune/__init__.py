"""eliza2llm: finetune."""
