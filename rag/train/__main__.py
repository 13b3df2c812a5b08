"""``python -m rag.train``: train the span reader (see :mod:`rag.train.train`)."""

from rag.train.train import main

raise SystemExit(main())
