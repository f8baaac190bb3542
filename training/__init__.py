"""Offline learning: corpora, fitting, evaluation and reports."""
