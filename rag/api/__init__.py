"""HTTP API (FastAPI): thin routes over the pipeline."""

from rag.api.app import create_app

__all__ = ["create_app"]
