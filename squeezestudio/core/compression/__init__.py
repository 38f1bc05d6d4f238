"""Compression methods, recipes, the size accounting and the .sqz codec."""
