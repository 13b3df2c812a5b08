"""``rag eval`` end to end on a file it has never seen, the report files and the CI gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.config import Settings
from rag.evaluation.harness import check_gate

pytestmark = pytest.mark.slow

NEW_SET = [
    {
        "id": "n1",
        "question": "What reference number does the Home Office letter carry?",
        "answers": ["M11295/16"],
        "documents": ["rudd-2016-10-24"],
        "evidence": "CTS Reference: M11295/16",
    },
    {
        "id": "n2",
        "question": "How much Government funding backs the Response Unit?",
        "answers": ["£1.24 million"],
        "documents": ["rudd-2016-10-24"],
        "evidence": "backed by £1.24 million of Government funding",
    },
    {
        "id": "n3",
        "question": "What is the boiling point of mercury?",
        "answers": [],
        "documents": [],
        "evidence": None,
    },
]


def test_eval_runs_on_a_new_file_and_writes_reports(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "new.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in NEW_SET))
    monkeypatch.setenv("RAG_INDEX_DIR", str(settings.index_dir))
    from rag.config import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--set",
            str(path),
            "--json",
            "--report",
            str(tmp_path / "rep"),
            "--reader",
            "heuristic",
            "--no-baseline",
        ],
    )
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    answers = report["readers"]["heuristic"]["answers"]
    assert answers["n"] == 3 and answers["n_answerable"] == 2
    assert 0 <= answers["answerable_f1"] <= 1
    assert set(report["retrieval"]["rag"]) == {"dense", "lexical", "hybrid"}
    assert report["retrieval"]["rag"]["hybrid"]["by_evidence"]["recall@10"] == 1.0
    for name in ("report.md", "report.html", "report.json"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<svg" in html and "<script" not in html


def test_gate_passes_and_fails_on_thresholds(tmp_path: Path) -> None:
    gate = tmp_path / "t.toml"
    gate.write_text("[min]\nanswerable_f1 = 0.8\n[max]\nanswerable_abstained = 0.1\n")
    assert check_gate({"answerable_f1": 0.85, "answerable_abstained": 0.05}, gate) == []
    failures = check_gate({"answerable_f1": 0.7, "answerable_abstained": 0.2}, gate)
    assert len(failures) == 2 and "below the minimum" in failures[0]
    assert check_gate({"answerable_abstained": 0.0}, gate)  # a missing metric fails
