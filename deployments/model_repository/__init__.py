"""Triton model repositories on disk: safe unpacking, layout, validation."""
