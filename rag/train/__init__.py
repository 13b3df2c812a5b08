"""Training the extractive span reader (``python -m rag.train``).

Nothing here runs when the service answers questions: this package turns the two
public extractive-QA data sets that ship on this machine (QED and PolicyQA) into
training windows and fine-tunes the packaged MiniLM encoder with a span head. The
result is a plain transformers checkpoint that :class:`rag.reader.qa_model.QAModel`
loads like any other SQuAD-style model.
"""
