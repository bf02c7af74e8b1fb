"""Kinds of target as plug-ins: one package per kind with its descriptor
(descriptor.py says what one holds); registry.py lists them and is the one
door to their adapters (README, "Target kinds and queues")."""
