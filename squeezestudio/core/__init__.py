"""Headless core of SqueezeStudio. Never imports Qt (a test enforces it)."""
