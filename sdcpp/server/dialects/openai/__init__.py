"""The OpenAI Images dialect (``/v1``, seed 003's contract)."""
