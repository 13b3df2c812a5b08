"""Every error the domain can raise, in one place.

They carry a message written for the person using the tool. The CLI turns them into
a one-line message and an exit code; the HTTP API turns them into a JSON error body
with a status code. Nothing below those edges knows about either.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class: anything the user can act on."""

    #: Stable machine-readable code used in the HTTP error body.
    code = "rag_error"


class ConfigError(RagError):
    """A setting is missing or invalid."""

    code = "config_error"


class DocumentLoadError(RagError):
    """A file could not be turned into a document (unreadable, binary, empty, too large)."""

    code = "document_unreadable"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class IndexNotFoundError(RagError):
    """No index exists at the expected location."""

    code = "index_missing"


class IndexCorruptError(RagError):
    """The index exists but its files fail verification (checksum, shape, manifest)."""

    code = "index_corrupt"


class IndexIncompatibleError(RagError):
    """The index was built with another format version or embedding model."""

    code = "index_incompatible"


class InvalidQuestionError(RagError):
    """The question is empty, whitespace only or too long."""

    code = "invalid_question"


class UnknownDocumentError(RagError):
    """A document id that the index does not hold."""

    code = "unknown_document"

    def __init__(self, document_id: str) -> None:
        super().__init__(f"unknown document id: {document_id!r}")
        self.document_id = document_id


class InvalidFilterError(RagError):
    """A filter value that cannot be applied (bad date, date_from after date_to)."""

    code = "invalid_filter"


class CitationError(RagError):
    """An answer's citation does not match the stored document text.

    Raised internally so that an unverifiable answer is never returned.
    """

    code = "citation_unverified"


class ModelLoadError(RagError):
    """A model could not be loaded from its path or package."""

    code = "model_unavailable"


class EmbedderUnavailableError(ModelLoadError):
    """The configured packaged embedding model cannot run: its wheel is missing, or its
    model file is not the pinned one."""

    code = "embedder_unavailable"


class RerankerUnavailableError(RagError):
    """The configured reranker cannot run: its package is missing, or its model file is
    not the pinned one."""

    code = "reranker_unavailable"


class ReaderWeightsError(RagError):
    """The reader's fitted weights are missing, malformed or fitted for something else."""


class EvalSetError(RagError):
    """An evaluation file does not follow the schema."""

    code = "eval_set_invalid"


class NotReadyError(RagError):
    """The service has no index and models loaded yet (or could not load them)."""

    code = "not_ready"


class RateLimitedError(RagError):
    """A client sent more requests than its share of a minute."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        #: Seconds after which a retry may succeed (the Retry-After header).
        self.retry_after = retry_after


class OverloadedError(RagError):
    """Every question slot and every place in the queue is taken: retry shortly."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        #: Seconds after which a retry may succeed (the Retry-After header).
        self.retry_after = retry_after


class BodyTooLargeError(RagError):
    """A request body is larger than the service reads."""

    code = "body_too_large"


class AdminAuthError(RagError):
    """An admin route was called without the admin token, or with a wrong one."""

    code = "unauthorized"


class InvalidDocumentIdError(RagError):
    """A document id that cannot name a file in the corpus folder."""

    code = "invalid_document_id"


class VectorStoreError(RagError):
    """The external vector store (Milvus) cannot be reached, lacks its package, or fails."""

    code = "vector_store_unavailable"


class IndexingEngineError(RagError):
    """The distributed indexing engine (Ray) is missing, unreachable, or ran out of retries."""

    code = "indexing_engine_failed"
