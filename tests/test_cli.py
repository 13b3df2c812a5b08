"""The command line as a user runs it: index, ask (text and --json), errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.config import get_settings

pytestmark = pytest.mark.slow


@pytest.fixture()
def env(index_dir: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RAG_INDEX_DIR", str(index_dir))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_ask_prints_answer_quote_source_and_offsets(env: None) -> None:
    question = "What is the CTS reference of the Home Office letter?"
    result = CliRunner().invoke(app, ["ask", question])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Answer: M11295/16" in out
    assert "[[M11295/16]]" in out  # the answer marked inside its sentence
    assert "rudd-2016-10-24 [" in out and "2016-10-24" in out


def test_ask_json_is_the_api_shape_and_explain_shows_stages(env: None) -> None:
    runner = CliRunner()
    off_topic = "What is the boiling point of mercury?"
    result = runner.invoke(app, ["ask", off_topic, "--json", "--top-k", "2"])
    body = json.loads(result.stdout)
    assert body["abstained"] is True and body["answer"] is None and len(body["passages"]) == 2
    explained = runner.invoke(app, ["ask", "Who wrote to Lucy Allan?", "--explain"])
    assert "Stages (ms)" in explained.stdout and "lexical" in explained.stdout


def test_cli_errors_are_one_clear_line(env: None, tmp_path: Path) -> None:
    runner = CliRunner()
    empty = runner.invoke(app, ["ask", "   "])
    assert empty.exit_code == 1 and "error: the question is empty" in empty.stderr
    missing = runner.invoke(app, ["ask", "anything?", "--index", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "rag index" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_index_prints_a_summary(
    tmp_path: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag import build_priority

    changed: list[str] = []
    monkeypatch.setattr(build_priority, "lower_priority", lambda n: changed.append("nice"))
    monkeypatch.setattr(build_priority, "bound_threads", lambda n: changed.append("threads"))
    runner = CliRunner()
    args = ["index", "--corpus", str(corpus_dir), "--out", str(tmp_path / "idx")]
    first = runner.invoke(app, args)
    # Called in another program's process, a build leaves its priority and pools alone.
    assert changed == []
    assert first.exit_code == 0, first.output
    assert "5 documents" in first.stdout and "new 5" in first.stdout
    second = runner.invoke(app, args)
    assert "index up to date" in second.stdout and "embedded 0 chunks" in second.stdout
