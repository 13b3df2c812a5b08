"""Evaluation harness: ``rag eval`` runs an evaluation set through the served pipeline."""
