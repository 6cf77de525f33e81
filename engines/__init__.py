"""eliza2llm: engines."""
