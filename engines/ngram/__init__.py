"""A statistical language model: modified Kneser-Ney n-grams and a MegaHAL-style reply search."""
