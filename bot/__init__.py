"""eliza2llm: bot."""
