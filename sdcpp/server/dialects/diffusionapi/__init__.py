"""Seed 001's Diffusion API: /hello, /models, /loras, /upscalers, POST /txt2img, GET /queue/{id}."""
