"""An interrupted training run resumes from its last checkpoint to the same step count.

Real training (the packaged MiniLM, a few steps on CPU) over a small data folder cut
from the shared data sets, so the test takes seconds, not minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.train.train import TrainConfig, data_path, parse_args, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQuAD 2.0 dev article and 30 QED rows, in the shared folders' layout."""
    shared = data_path(TrainConfig())
    root = tmp_path_factory.mktemp("datasets")
    (root / "squad2-dev-28").mkdir()
    (root / "qed").mkdir()
    src = sorted((shared / "squad2-dev-28").glob("*.json"))[0]
    data = json.loads(src.read_text(encoding="utf-8"))
    article = data["data"][0]
    article["paragraphs"] = article["paragraphs"][:3]
    second = json.loads(json.dumps(article))
    second["title"] = article["title"] + " (copy)"
    data["data"] = [article, second]
    (root / "squad2-dev-28" / "part.json").write_text(json.dumps(data), encoding="utf-8")
    qed = sorted((shared / "qed").glob("*.jsonl"))[0]
    lines = qed.read_text(encoding="utf-8").splitlines()[:30]
    (root / "qed" / "part.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def config(tmp: Path, data: Path, *extra: str) -> TrainConfig:
    return parse_args(argv(tmp, data, *extra))


def argv(tmp: Path, data: Path, *extra: str) -> list[str]:
    return [
        "--data-dir",
        str(data),
        "--mix",
        "squad2=1,qed=1",
        "--heldout",
        "squad2=0.4,default=0.1",
        "--out",
        str(tmp / "model"),
        "--checkpoints",
        str(tmp / "ckpt"),
        "--limit",
        "48",
        "--batch-size",
        "4",
        "--max-steps",
        "6",
        "--checkpoint-every",
        "2",
        "--max-seq-len",
        "128",
        "--doc-stride",
        "32",
        "--threads",
        "1",
        *extra,
    ]


def test_interrupted_run_resumes_to_the_same_step_count(tmp_path: Path, small_data: Path) -> None:
    whole = run(config(tmp_path / "whole", small_data))
    assert whole["training"]["steps"] == 6 and whole["training"]["resumed_at_steps"] == []

    first = run(config(tmp_path / "cut", small_data, "--stop-after-steps", "3"))
    assert first == {"interrupted_at_step": 3}
    assert not (tmp_path / "cut" / "model").exists()  # nothing half-written is published
    state = json.loads((tmp_path / "cut" / "ckpt" / "last" / "state.json").read_text())
    assert state["step"] == 3

    resumed = run(config(tmp_path / "cut", small_data, "--resume"))
    assert resumed["training"]["steps"] == whole["training"]["steps"] == 6
    assert resumed["training"]["resumed_at_steps"] == [3]
    assert resumed["hyperparameters"]["total_steps_planned"] == 6
    manifest = json.loads((tmp_path / "cut" / "model" / "manifest.json").read_text())
    assert manifest["training"]["steps"] == 6
    # Every data file is recorded relative to the project, with its hash and counts.
    for f in manifest["data"]["files"]:
        assert not Path(f["path"]).is_absolute() or str(small_data) in f["path"]
        assert len(f["sha256"]) == 64
    assert set(manifest["data"]["sources"]) == {"squad2", "qed"}


def test_resume_refuses_a_checkpoint_made_with_other_settings(
    tmp_path: Path, small_data: Path
) -> None:
    run(config(tmp_path, small_data, "--stop-after-steps", "2"))
    with pytest.raises(SystemExit, match=r"other settings.*lr"):
        run(config(tmp_path, small_data, "--resume", "--lr", "0.001"))


def test_a_stopped_run_publishes_what_it_reached_and_another_machine_continues(
    tmp_path: Path, small_data: Path
) -> None:
    """SIGTERM mid-run: the run checkpoints, publishes its weights with resume.json, and
    a machine without the checkpoint folder (only the published model, as committed)
    continues to the planned step count."""
    args = argv(tmp_path, small_data, "--max-steps", "30", "--checkpoint-every", "1")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.train", *args],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(root)},
    )
    state_file = tmp_path / "ckpt" / "last" / "state.json"
    deadline = time.monotonic() + 600  # generous: a busy machine prepares data slowly
    while not state_file.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]

    out = tmp_path / "model"
    manifest = json.loads((out / "manifest.json").read_text())
    state = json.loads((out / "resume.json").read_text())
    stopped_at = state["step"]
    assert 1 <= stopped_at < 30
    assert manifest["training"]["status"] == "stopped, resumable"
    assert manifest["training"]["steps"] == stopped_at == manifest["heldout"]["published_step"]
    assert manifest["heldout"]["history"][-1]["step"] == stopped_at

    shutil.rmtree(tmp_path / "ckpt")  # a new machine: only the committed folder is left
    resumed = run(config(tmp_path, small_data, "--max-steps", "30", "--resume"))
    assert resumed["training"]["steps"] == 30
    assert resumed["training"]["resumed_at_steps"] == [stopped_at]
    assert resumed["training"]["status"] == "finished"
    assert not (out / "resume.json").exists()


def test_resume_from_a_published_model_refuses_other_settings(
    tmp_path: Path, small_data: Path
) -> None:
    out = tmp_path / "model"
    out.mkdir()
    state = {"config": {"lr": 1.0}, "step": 3}
    (out / "resume.json").write_text(json.dumps(state))
    with pytest.raises(SystemExit, match="other settings"):
        run(config(tmp_path, small_data, "--resume"))
