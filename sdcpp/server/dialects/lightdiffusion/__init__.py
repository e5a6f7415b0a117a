"""Seed 000's LightDiffusion-Next server: /api/telemetry and POST /api/generate with batching."""
