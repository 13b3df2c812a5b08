"""Extractive readers: find the answer span inside retrieved passages, or abstain."""
