"""A span decoder for any local transformers extractive-QA checkpoint.

transformers 5.x removed ``pipeline("question-answering")``, so this module does what
the pipeline did: cut each context into overlapping windows, run the model on all
windows of all contexts in a few padded batches, and turn start/end logits into
character spans of the original context. It serves our own trained reader
(``models/reader/``, see :mod:`rag.train`) and any SQuAD-style checkpoint a user has
on disk (for example deepset/minilm-uncased-squad2) alike.

The window encoding (:func:`encode_windows`) and the per-window decoding
(:func:`decode_window`) are module functions because the trainer uses the very same
code: a span the model learnt to point at during training is decoded the same way at
answering time.

Nothing is loaded at import time; :meth:`QAModel.warm_up` (or the first
:meth:`QAModel.predict`) loads the tokenizer and model.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import ModelLoadError
from rag.reader.batching import CoalescingRunner

#: Questions longer than this many tokens are cut: a question never needs more, and the
#: rest of the window is better spent on context.
MAX_QUERY_TOKENS = 64

#: The smallest window that still leaves room for a question and some context.
MIN_SEQ_LEN = 32

#: Most windows one model call takes from concurrent questions (one question's windows
#: are never split; 8 passages make about 10 windows).
MAX_BATCH_WINDOWS = 128


@dataclass(frozen=True, slots=True)
class SpanPrediction:
    """One answer span, in character offsets of one of the given contexts."""

    context_index: int  # which of the given contexts
    start: int  # character offsets into that context
    end: int
    text: str  # == contexts[context_index][start:end]
    score: float  # start_logit + end_logit of the span
    null_score: float  # the model's own no-answer score for that context (min over windows)
    probability: float  # softmax over the window's valid spans and its null: span vs the rest


@dataclass(frozen=True, slots=True)
class EncodedWindow:
    """One model input: a question and a slice of one context, with offsets back.

    ``offsets[i]`` are character offsets into the context for context tokens
    (``context_start <= i <= context_end``) and meaningless elsewhere.
    """

    pair_index: int  # which (question, context) pair it came from
    input_ids: list[int]
    token_type_ids: list[int] | None
    offsets: list[tuple[int, int]]
    context_start: int  # first context token (inclusive)
    context_end: int  # last context token (inclusive)
    cls_index: int  # the token whose start/end logits mean "no answer"


@dataclass(frozen=True, slots=True)
class WindowSpan:
    """A decoded span of one window, before it is tied to a context index."""

    start: int  # character offsets into the context
    end: int
    score: float
    probability: float


def truncate_question(tokenizer: Any, question: str, max_tokens: int = MAX_QUERY_TOKENS) -> str:
    """Cut ``question`` after ``max_tokens`` tokens, at a character boundary.

    Windows are cut from the context only (``only_second``); an overlong question
    would otherwise make every window fail, so it is shortened once, up front.
    """
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_tokens:
        return question
    return question[: offsets[max_tokens - 1][1]]


def encode_windows(
    tokenizer: Any,
    questions: Sequence[str],
    contexts: Sequence[str],
    *,
    max_seq_len: int,
    doc_stride: int,
    max_query_tokens: int = MAX_QUERY_TOKENS,
) -> list[EncodedWindow]:
    """Tokenise (question, context) pairs into overlapping windows of ``max_seq_len``.

    ``doc_stride`` is the number of context tokens two consecutive windows share (the
    tokenizer's ``stride``), so an answer cut by one window's edge lies whole in the
    next. The question goes first unless the tokenizer pads on the left (XLNet-style
    models put the context first). Windows without any context token (an empty
    context) are skipped.
    """
    if len(questions) != len(contexts):
        raise ValueError("questions and contexts must have the same length")
    if not questions:
        return []
    question_first = getattr(tokenizer, "padding_side", "right") != "left"
    qs = [truncate_question(tokenizer, q, max_query_tokens) for q in questions]
    first, second = (qs, list(contexts)) if question_first else (list(contexts), qs)
    enc = tokenizer(
        first,
        second,
        truncation="only_second" if question_first else "only_first",
        max_length=max_seq_len,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    context_id = 1 if question_first else 0
    cls_id = getattr(tokenizer, "cls_token_id", None)
    has_types = "token_type_ids" in enc
    windows: list[EncodedWindow] = []
    for i, pair_index in enumerate(enc["overflow_to_sample_mapping"]):
        seq_ids = enc.sequence_ids(i)
        ctx = [j for j, s in enumerate(seq_ids) if s == context_id]
        if not ctx:
            continue
        ids = list(enc["input_ids"][i])
        cls_index = ids.index(cls_id) if cls_id is not None and cls_id in ids else 0
        windows.append(
            EncodedWindow(
                pair_index=int(pair_index),
                input_ids=ids,
                token_type_ids=list(enc["token_type_ids"][i]) if has_types else None,
                offsets=[(int(a), int(b)) for a, b in enc["offset_mapping"][i]],
                context_start=ctx[0],
                context_end=ctx[-1],
                cls_index=cls_index,
            )
        )
    return windows


@dataclass(slots=True)
class WindowScores:
    """The span scores of one window's context tokens, with the window's null score."""

    offsets: list[tuple[int, int]]  # character offsets of each context token
    start_logits: np.ndarray  # per context token
    end_logits: np.ndarray
    scores: np.ndarray  # [start, end] -> start + end logit, -inf where no valid span
    null: float
    #: log-sum-exp over the valid spans and the null: a span's probability is
    #: exp(score - log_z), "this span rather than any other answer or none".
    log_z: float


def window_scores(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    window: EncodedWindow,
    *,
    max_answer_tokens: int,
) -> WindowScores:
    """Score every span of one window's context.

    A valid span starts and ends on context tokens (never on the question or special
    tokens), has end >= start and at most ``max_answer_tokens`` tokens. Its score is
    ``start_logit + end_logit``. Logits beyond the window's real length (padding) are
    ignored.
    """
    n = len(window.input_ids)
    s = np.asarray(start_logits[:n], dtype=np.float64)
    e = np.asarray(end_logits[:n], dtype=np.float64)
    null = float(s[window.cls_index] + e[window.cls_index])
    lo, hi = window.context_start, window.context_end + 1
    cs, ce = s[lo:hi], e[lo:hi]
    m = hi - lo
    idx = np.arange(m)
    length = idx[None, :] - idx[:, None]  # end - start, in tokens
    valid = (length >= 0) & (length < max_answer_tokens)
    offsets = window.offsets[lo:hi]
    # Tokens with an empty offset (rare: special tokens inside the context) cannot
    # bound a span.
    empty = np.array([a >= b for a, b in offsets], dtype=bool)
    if empty.any():
        valid &= ~empty[:, None] & ~empty[None, :]
    scores = np.where(valid, cs[:, None] + ce[None, :], -np.inf)
    finite = scores[valid]
    top = max(float(finite.max()), null) if finite.size else null
    log_z = top + math.log(float(np.exp(finite - top).sum()) + math.exp(null - top))
    return WindowScores(list(offsets), cs, ce, scores, null, log_z)


def top_spans(scored: WindowScores, top_k: int) -> list[WindowSpan]:
    """The ``top_k`` best valid spans of a window, best first."""
    flat = scored.scores.ravel()
    k = min(top_k, int(np.isfinite(flat).sum()))
    if k <= 0:
        return []
    best = np.argpartition(-flat, k - 1)[:k]
    best = best[np.argsort(-flat[best], kind="stable")]
    m = len(scored.offsets)
    spans = []
    for b in best:
        i, j = divmod(int(b), m)
        score = float(flat[b])
        spans.append(
            WindowSpan(
                start=scored.offsets[i][0],
                end=scored.offsets[j][1],
                score=score,
                probability=math.exp(score - scored.log_z),
            )
        )
    return spans


def decode_window(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    window: EncodedWindow,
    *,
    max_answer_tokens: int,
    top_k: int,
) -> tuple[list[WindowSpan], float]:
    """The ``top_k`` best spans of one window (see ``window_scores``), and its null score."""
    scored = window_scores(start_logits, end_logits, window, max_answer_tokens=max_answer_tokens)
    return top_spans(scored, top_k), scored.null


#: How the QA model runs: "torch" (fp32), "onnx" (fp32 through ONNX Runtime), "int8"
#: (ONNX Runtime with per-channel int8 weights, activations quantised per call).
RUNTIMES = ("torch", "int8", "onnx")


def _is_local(model_name_or_path: str) -> bool:
    return Path(model_name_or_path).expanduser().exists()


class QAModel:
    """An extractive question-answering model: best spans of a question over contexts.

    Construction only stores and validates settings; the model is loaded on
    :meth:`warm_up` (or the first :meth:`predict`), so importing or configuring a
    reader never costs a model load.
    """

    def __init__(
        self,
        model_name_or_path: str,
        *,
        max_seq_len: int = 384,
        doc_stride: int = 128,
        max_answer_tokens: int = 30,
        batch_size: int = 16,
        runtime: str = "torch",
        coalesce: bool = True,
    ) -> None:
        if not isinstance(model_name_or_path, str) or not model_name_or_path.strip():
            raise ValueError("model_name_or_path must be a non-empty path or model id")
        for name, value in (
            ("max_seq_len", max_seq_len),
            ("doc_stride", doc_stride),
            ("max_answer_tokens", max_answer_tokens),
            ("batch_size", batch_size),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if max_seq_len < MIN_SEQ_LEN:
            raise ValueError(f"max_seq_len must be at least {MIN_SEQ_LEN}, got {max_seq_len}")
        if not 0 <= doc_stride < max_seq_len // 2:
            raise ValueError(
                f"doc_stride (tokens shared by consecutive windows) must be in "
                f"[0, max_seq_len // 2) = [0, {max_seq_len // 2}), got {doc_stride}"
            )
        if max_answer_tokens < 1:
            raise ValueError(f"max_answer_tokens must be at least 1, got {max_answer_tokens}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        self.model_name_or_path = model_name_or_path
        self.max_seq_len = max_seq_len
        self.doc_stride = doc_stride
        self.max_answer_tokens = max_answer_tokens
        self.batch_size = batch_size
        self.runtime = runtime
        # The question may take at most a quarter of the window, so with
        # doc_stride < max_seq_len // 2 the context part always exceeds the stride.
        self.max_query_tokens = min(MAX_QUERY_TOKENS, max_seq_len // 4)
        self._tokenizer: Any = None
        self._model: Any = None
        self._lock = threading.Lock()
        #: Concurrent questions' windows run in one model call (see rag.reader.batching);
        #: off, each question calls the model on its own, in parallel with the others.
        #: Never for int8: dynamic quantisation scales activations by the whole batch, so
        #: another user's question in the batch would change this one's answer (measured:
        #: 12 of 40 dev questions scored differently).
        self.coalesce = coalesce and runtime != "int8"
        self.batcher: CoalescingRunner[EncodedWindow, tuple[np.ndarray, np.ndarray]] = (
            CoalescingRunner(self._run_windows, max_items=MAX_BATCH_WINDOWS)
        )

    def __repr__(self) -> str:
        return (
            f"QAModel({self.model_name_or_path!r}, max_seq_len={self.max_seq_len}, "
            f"doc_stride={self.doc_stride}, max_answer_tokens={self.max_answer_tokens})"
        )

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def warm_up(self) -> None:
        """Load the tokenizer and the model (fp32, CPU, eval mode); a no-op once loaded.

        Raises :class:`ModelLoadError` when the path or id cannot be loaded without the
        network, when the tokenizer has no offset mapping (a "slow" tokenizer cannot
        map tokens back to characters) or when the model is shorter than
        ``max_seq_len``.
        """
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            tokenizer, model = self._load()
            self._tokenizer = tokenizer
            self._model = model

    def _load(self) -> tuple[Any, Any]:
        name = self.model_name_or_path
        local = _is_local(name)
        if not local and (name.startswith((".", "/", "~")) or name.count("/") > 1):
            raise ModelLoadError(f"QA model directory not found: {name}")
        where = f"directory {name}" if local else f"model id {name!r} (local cache only, offline)"
        try:
            import torch
            from transformers import AutoModelForQuestionAnswering, AutoTokenizer

            path = str(Path(name).expanduser()) if local else name
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForQuestionAnswering.from_pretrained(
                path, local_files_only=True, dtype=torch.float32
            )
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError...
            raise ModelLoadError(
                f"cannot load an extractive QA model from {where}: {exc}".strip()
            ) from exc
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(
                f"the tokenizer of {where} is not a fast tokenizer: spans cannot be mapped "
                "back to characters without an offset mapping"
            )
        limit = getattr(model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and self.max_seq_len > limit:
            raise ModelLoadError(
                f"max_seq_len={self.max_seq_len} exceeds what the model at {where} "
                f"accepts ({limit} positions)"
            )
        model.to("cpu")
        model.float()
        model.eval()
        if self.runtime in ("onnx", "int8"):
            model = _OnnxQA(model, where, int8=self.runtime == "int8")
        return tokenizer, model

    def predict(
        self, question: str, contexts: Sequence[str], top_n: int = 5
    ) -> list[SpanPrediction]:
        """The ``top_n`` best spans over all ``contexts``, best (highest score) first.

        Each context is cut into windows of ``max_seq_len`` tokens sharing
        ``doc_stride`` tokens; all windows of all contexts go through the model in
        batches of ``batch_size``, shortest first, padded per batch. A span found in
        two overlapping windows is reported once, with its best score.
        """
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
        if isinstance(contexts, str):
            raise ValueError("contexts must be a sequence of strings, not one string")
        if top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {top_n}")
        null_scores: dict[int, float] = {}
        best: dict[tuple[int, int, int], tuple[float, float]] = {}
        for window, start_logits, end_logits in self.window_logits(question, contexts):
            spans, null = decode_window(
                start_logits,
                end_logits,
                window,
                max_answer_tokens=self.max_answer_tokens,
                top_k=top_n,
            )
            ci = window.pair_index
            null_scores[ci] = min(null, null_scores.get(ci, math.inf))
            for span in spans:
                key = (ci, span.start, span.end)
                if key not in best or span.score > best[key][0]:
                    best[key] = (span.score, span.probability)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:top_n]
        return [
            SpanPrediction(
                context_index=ci,
                start=start,
                end=end,
                text=contexts[ci][start:end],
                score=score,
                null_score=null_scores[ci],
                probability=min(1.0, max(0.0, prob)),
            )
            for (ci, start, end), (score, prob) in ranked
        ]

    def window_logits(
        self, question: str, contexts: Sequence[str]
    ) -> list[tuple[EncodedWindow, np.ndarray, np.ndarray]]:
        """Every window of every context with its start and end logits.

        For callers that score spans of their own (the fused reader scores the
        heuristic's candidates with the model): ``window.pair_index`` is the context.
        """
        if not contexts:
            return []
        self.warm_up()
        windows = encode_windows(
            self._tokenizer,
            [question] * len(contexts),
            list(contexts),
            max_seq_len=self.max_seq_len,
            doc_stride=self.doc_stride,
            max_query_tokens=self.max_query_tokens,
        )
        if not windows:
            return []
        logits = self.batcher.run(windows) if self.coalesce else self._run_windows(windows)
        return [(w, s, e) for w, (s, e) in zip(windows, logits, strict=True)]

    def _run_windows(self, windows: Sequence[EncodedWindow]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Start/end logits of every window, in the order given."""
        import torch

        order = sorted(range(len(windows)), key=lambda i: len(windows[i].input_ids))
        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(windows)
        pad_id = self._tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                chunk = [windows[i] for i in order[b : b + self.batch_size]]
                inputs = collate(chunk, pad_id=pad_id)
                if isinstance(self._model, _OnnxQA):
                    starts, ends = self._model.run(inputs)
                else:
                    result = self._model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
                    starts = result.start_logits.float().numpy()
                    ends = result.end_logits.float().numpy()
                for k, i in enumerate(order[b : b + self.batch_size]):
                    out[i] = (starts[k], ends[k])
        return [o for o in out if o is not None]


class _OnnxQA:
    """The model run by ONNX Runtime, fp32 or with int8 weights.

    Exported in memory when loaded (under a second for MiniLM), so nothing derived from
    the committed model is stored. ``int8``: ONNX Runtime's dynamic quantisation with
    one scale per output channel of every weight matrix (int8 weights, activations
    quantised per call). Per-channel scales are why this replaced torch's per-tensor
    ``quantize_dynamic``: on the SQuAD benchmark (``rag eval``, README) it keeps fp32's
    answerable F1 (0.639 against 0.633), where torch's int8 lost 0.08.
    """

    def __init__(self, model: Any, where: str, *, int8: bool = False) -> None:
        import torch

        try:
            import onnxruntime  # noqa: F401  (missing: this clear error, not a traceback)
        except ImportError as exc:
            raise ModelLoadError("runtimes 'onnx' and 'int8' need the onnxruntime package") from exc
        names = onnx_input_names(model)
        graph = export_onnx(model, where)
        if int8:
            graph = quantize_int8(graph, where)
        self.session = onnx_session(graph, torch.get_num_threads())
        self.inputs = names

    def run(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        feed = {n: batch[n].astype(np.int64) for n in self.inputs if n in batch}
        if "token_type_ids" in self.inputs and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        starts, ends = self.session.run(["start_logits", "end_logits"], feed)
        return np.asarray(starts, dtype=np.float32), np.asarray(ends, dtype=np.float32)


def onnx_session(model: bytes | str, threads: int) -> Any:
    """An ONNX Runtime CPU session of ``model`` (a graph or a file) on ``threads`` threads.

    One way to open a session for every ONNX model the service runs (the QA model, the
    reranker), so they all share these options. Worker threads do not spin: spinning
    would keep the cores busy after each call and slow the embedding and spaCy work
    that follows.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def onnx_input_names(model: Any) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if getattr(model.config, "type_vocab_size", 0):
        names.append("token_type_ids")
    return names


def export_onnx(model: Any, where: str) -> bytes:
    """The torch QA model as an ONNX graph (dynamic batch and length), in memory."""
    import io

    import torch

    names = onnx_input_names(model)
    dummy = tuple(torch.ones((1, 8), dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "start_logits", "end_logits"]}
    buffer = io.BytesIO()
    try:
        torch.onnx.export(
            model,
            dummy,
            buffer,  # type: ignore[arg-type]  # file-like objects are accepted
            input_names=names,
            output_names=["start_logits", "end_logits"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    except Exception as exc:
        raise ModelLoadError(f"cannot export the QA model at {where} to ONNX: {exc}") from exc
    return buffer.getvalue()


def quantize_int8(graph: bytes, where: str) -> bytes:
    """The fp32 ONNX graph with int8 weights, one scale per output channel."""
    import tempfile

    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory(prefix="rag-int8-") as tmp:
            src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            src.write_bytes(graph)
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True)
            return dst.read_bytes()
    except Exception as exc:
        raise ModelLoadError(f"cannot quantise the QA model at {where} to int8: {exc}") from exc


def collate(windows: Sequence[EncodedWindow], *, pad_id: int) -> dict[str, np.ndarray]:
    """Right-pad windows to the longest one of the batch (dynamic padding)."""
    width = max(len(w.input_ids) for w in windows)
    ids = np.full((len(windows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(windows), width), dtype=np.int64)
    types = np.zeros((len(windows), width), dtype=np.int64)
    with_types = all(w.token_type_ids is not None for w in windows)
    for r, w in enumerate(windows):
        n = len(w.input_ids)
        ids[r, :n] = w.input_ids
        mask[r, :n] = 1
        if with_types and w.token_type_ids is not None:
            types[r, :n] = w.token_type_ids
    batch = {"input_ids": ids, "attention_mask": mask}
    if with_types:
        batch["token_type_ids"] = types
    return batch
