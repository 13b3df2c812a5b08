"""The dense index: exact below a size, IVF above it, and the chunk vectors stored once.

Exact search (``IndexFlatIP``) costs O(N) per question: issue 12 measured 15 ms at 100k
chunks and 142 ms at 1M on this machine. An inverted file (``IndexIVFFlat``) probes ``nprobe`` of
``nlist`` k-means cells instead, at a small, measured loss of recall against exact
search (``bench/dense_search.py``; README "Index types"). Below
``RAG_DENSE_IVF_MIN_CHUNKS`` exact search is fast enough and loses nothing, so small
collections (the letters) are searched exactly and answer exactly as before.

The FAISS index is the only copy of the chunk vectors, on disk and in memory: the
builder reads previous vectors back from it (``vectors_of``) instead of keeping a second
``vectors.npy``. Every label in either index type is the chunk's row, so the rest of the
code never learns which type it searches.

An update of an IVF index keeps its trained quantiser: chunks of removed or changed
documents are removed by id, the rows of the chunks kept are renumbered in place and new
chunks are added. Once the collection has grown past ``retrain_growth`` times what the
quantiser was trained on, its cells are too crowded and it is trained again.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import faiss
import numpy as np

log = logging.getLogger(__name__)

#: Training points per IVF cell: k-means needs a few dozen per centroid (FAISS warns
#: below 39) and gains little past 64 while its cost grows with every point.
TRAIN_POINTS_PER_LIST = 64

#: k-means iterations when training the quantiser (FAISS's default is 25; the cells
#: barely move after 10 on sentence embeddings, and training time is linear in this).
TRAIN_ITERATIONS = 10

#: Up to this many allowed rows, a filtered search is exact over them, their vectors
#: gathered by id (FAISS reconstructs up to 1,000 ids on one thread, more on its OpenMP
#: threads, which contend with torch's in the served process). Above it, an IVF search
#: with a bitmap of the rows probes ``filtered_probes`` cells.
GATHER_ROWS = 1_000

#: ``faiss.DirectMap.NoMap`` (the stubs do not declare the enum): ids may be renumbered.
_NO_DIRECT_MAP = 0


class DenseKind(StrEnum):
    AUTO = "auto"  # flat below ivf_min_chunks, IVF at or above
    FLAT = "flat"
    IVF = "ivf"


@dataclass(frozen=True, slots=True)
class DenseSettings:
    """How the dense index is built and searched (``RAG_DENSE_*``, README "Configuration")."""

    kind: DenseKind = DenseKind.AUTO
    ivf_min_chunks: int = 10_000
    #: IVF cells; 0 chooses from the collection's size (``auto_nlist``).
    nlist: int = 0
    nprobe: int = 32
    retrain_growth: float = 4.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.ivf_min_chunks < 1 or self.nlist < 0 or self.nprobe < 1:
            raise ValueError("ivf_min_chunks and nprobe must be positive, nlist at least 0")
        if self.retrain_growth <= 1:
            raise ValueError("retrain_growth must be greater than 1")

    def kind_for(self, n: int) -> DenseKind:
        if self.kind is not DenseKind.AUTO:
            return self.kind
        return DenseKind.IVF if n >= self.ivf_min_chunks else DenseKind.FLAT

    def nlist_for(self, n: int) -> int:
        return self.nlist or auto_nlist(n)


def auto_nlist(n: int) -> int:
    """About 4·√N cells (FAISS's rule of thumb), a power of two, each with enough points.

    At 1M chunks: 4,096 cells of about 244 chunks; at 50k: 1,024 cells of about 49.
    """
    if n < 2:
        return 1
    target = 4.0 * math.sqrt(n)
    nlist = 2 ** round(math.log2(target))
    return max(1, min(nlist, n // 39))


@dataclass(frozen=True, slots=True)
class DenseInfo:
    """What the manifest records about the dense index (``Manifest.dense``)."""

    kind: str
    ntotal: int
    dimension: int
    nlist: int = 0
    #: Chunks in the collection when the quantiser was trained (IVF only).
    trained_on: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DenseInfo:
        return cls(**data)


def info_of(index: faiss.Index, trained_on: int = 0) -> DenseInfo:
    ivf = _as_ivf(index)
    if ivf is None:
        return DenseInfo("flat", int(index.ntotal), int(index.d))
    return DenseInfo("ivf", int(index.ntotal), int(index.d), int(ivf.nlist), trained_on)


def build_dense(vectors: np.ndarray, settings: DenseSettings) -> tuple[faiss.Index, DenseInfo]:
    """A new index over ``vectors`` (row i labelled i), of the kind chosen for their number."""
    n, dim = vectors.shape
    if settings.kind_for(n) is DenseKind.FLAT or n < 2:
        flat = faiss.IndexFlatIP(dim)
        if n:
            flat.add(vectors)
        return flat, info_of(flat)
    nlist = min(settings.nlist_for(n), n)
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.spherical = True  # centroids on the unit sphere, like the vectors
    ivf.cp.niter = TRAIN_ITERATIONS
    ivf.cp.seed = settings.seed
    ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
    rng = np.random.default_rng(settings.seed)
    sample_size = min(n, nlist * TRAIN_POINTS_PER_LIST)
    sample = np.sort(rng.choice(n, size=sample_size, replace=False))
    ivf.train(np.ascontiguousarray(vectors[sample]))
    ivf.add(vectors)
    ivf.make_direct_map(True)
    ivf.nprobe = min(settings.nprobe, nlist)
    log.info("trained IVF index: %d cells on %d of %d chunks", nlist, sample_size, n)
    return ivf, info_of(ivf, trained_on=n)


def update_dense(
    previous: faiss.Index,
    previous_info: DenseInfo,
    vectors: np.ndarray,
    kept: np.ndarray,
    settings: DenseSettings,
) -> tuple[faiss.Index, DenseInfo]:
    """The index over ``vectors``, reusing ``previous`` (a loaded copy, changed in place).

    ``kept[old_row]`` is the new row of a previous chunk that is still there with the
    same vector, or -1 when it is gone. An IVF index keeps its quantiser: removed chunks
    are removed by id, kept ones relabelled, new ones added. Anything else (a flat index,
    another kind wanted, another ``nlist``, growth past ``retrain_growth``) is built anew.
    """
    n = int(vectors.shape[0])
    ivf = _as_ivf(previous)
    reusable = (
        ivf is not None
        and settings.kind_for(n) is DenseKind.IVF
        and int(previous.d) == int(vectors.shape[1])
        and kept.shape == (int(previous.ntotal),)
        and (settings.nlist == 0 or settings.nlist == ivf.nlist)
        and previous_info.trained_on > 0
        and n <= settings.retrain_growth * previous_info.trained_on
    )
    if not reusable or ivf is None:
        if ivf is not None and n > settings.retrain_growth * max(previous_info.trained_on, 1):
            log.info(
                "retraining the IVF quantiser: %d chunks, trained on %d",
                n,
                previous_info.trained_on,
            )
        return build_dense(vectors, settings)
    ivf.set_direct_map_type(_NO_DIRECT_MAP)
    gone = np.flatnonzero(kept < 0).astype(np.int64)
    if gone.size:
        ivf.remove_ids(faiss.IDSelectorBatch(gone))
    _relabel(ivf, kept)
    fresh = np.ones(n, dtype=bool)
    fresh[kept[kept >= 0]] = False
    rows = np.flatnonzero(fresh).astype(np.int64)
    if rows.size:
        ivf.add_with_ids(np.ascontiguousarray(vectors[rows]), rows)
    if int(ivf.ntotal) != n:
        raise ValueError(f"IVF update left {ivf.ntotal} vectors for {n} chunks")
    ivf.make_direct_map(True)
    ivf.nprobe = min(settings.nprobe, int(ivf.nlist))
    log.info("updated IVF index: %d removed, %d added", gone.size, rows.size)
    return ivf, info_of(ivf, trained_on=previous_info.trained_on)


def _relabel(ivf: faiss.IndexIVF, new_row: np.ndarray) -> None:
    """Renumber every stored id through ``new_row``, in place, list by list."""
    invlists = ivf.invlists
    if invlists is None:  # pragma: no cover - every IVF index has its lists
        raise ValueError("IVF index without inverted lists")
    for list_no in range(int(ivf.nlist)):
        size = int(invlists.list_size(list_no))
        if size == 0:
            continue
        ids = faiss.rev_swig_ptr(invlists.get_ids(list_no), size)
        ids[:] = new_row[ids]


def vectors_of(index: faiss.Index) -> np.ndarray:
    """Every stored vector, row i at position i (the builder's cache of embeddings)."""
    n = int(index.ntotal)
    if n == 0:
        return np.zeros((0, int(index.d)), dtype=np.float32)
    return np.asarray(index.reconstruct_n(0, n), dtype=np.float32)


def search(
    index: faiss.Index,
    query: np.ndarray,
    k: int,
    allowed: np.ndarray | None,
    nprobe: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and rows of the ``k`` best chunks (rows -1 pad a short answer)."""
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    ivf = _as_ivf(index)
    if ivf is None:
        params = None
        if allowed is not None:
            params = faiss.SearchParameters()
            params.sel = faiss.IDSelectorBatch(allowed)
        scores, rows = index.search(q, k, params=params)
        return scores[0], rows[0]
    if allowed is not None and allowed.size <= GATHER_ROWS:
        return _search_subset(ivf, q[0], k, allowed)
    ivf_params = faiss.SearchParametersIVF()
    probes = min(nprobe or int(ivf.nprobe), int(ivf.nlist))
    if allowed is not None:
        probes = filtered_probes(probes, int(ivf.nlist), int(ivf.ntotal), int(allowed.size))
        selector = row_bitmap(allowed, int(ivf.ntotal))
        ivf_params.sel = selector  # held in this frame while FAISS searches with it
    ivf_params.nprobe = probes
    scores, rows = ivf.search(q, k, params=ivf_params)
    return scores[0], rows[0]


def filtered_probes(nprobe: int, nlist: int, ntotal: int, allowed: int) -> int:
    """The cells a filtered IVF search probes: ``nprobe / sqrt(share allowed)``.

    A filter that allows a share s of the rows leaves about s of each cell. Probing
    ``nprobe`` cells, as an unfiltered search does, then scores s times fewer candidates
    and misses allowed rows: on the 44,629 real chunk vectors of ``../shared/datasets``,
    recall@10 against exact filtered search fell to 0.68 for a 2 % filter. Probing every
    cell is exact but costs a bit test for every row (2.5 to 10 times an unfiltered
    search there). ``nprobe / s`` cells score as many allowed rows as the unfiltered search
    scores rows, but a selector's scan is dearer per row, so that cost 1.6 to 2.5 times
    an unfiltered search. ``nprobe / sqrt(s)`` gave the unfiltered search's own recall
    (0.949 to 0.958 against 0.958) at about its time (0.20 to 0.28 ms against 0.23;
    ``bench/dense_search.py --vectors-from``; README "Index types"). Served, with the
    bitmap built per question, a date filter costs about 1.4 unfiltered searches at 100k
    and 1M chunks (``bench/index_scale.py``).
    """
    if allowed <= 0 or allowed >= ntotal:
        return min(nprobe, nlist)
    return min(nlist, math.ceil(nprobe * math.sqrt(ntotal / allowed)))


def row_bitmap(allowed: np.ndarray, ntotal: int) -> faiss.IDSelectorBitmap:
    """The allowed rows as one bit per row of the collection (N/8 bytes).

    ``IDSelectorBatch`` builds a hash set of the rows on every question: 12 ms for the
    127k rows of a date filter at 1M chunks, ten times the search itself. A bitmap is
    set in a fraction of a millisecond and tested in one load per candidate.
    """
    mask = np.zeros(ntotal, dtype=bool)
    mask[allowed] = True
    # One argument: faiss's Python wrapper keeps the bitmap alive with the selector (the
    # stubs know only the two-argument C++ form).
    bitmap = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(bitmap)  # type: ignore[call-arg, arg-type]


def _search_subset(
    ivf: faiss.IndexIVF, query: np.ndarray, k: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact search over a few allowed rows: O(rows allowed), whatever the collection's size."""
    rows = np.asarray(allowed, dtype=np.int64)
    scores = ivf.reconstruct_batch(rows) @ query
    top = np.argsort(-scores, kind="stable")[:k]
    return scores[top].astype(np.float32), rows[top]


def _as_ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None
