"""`rag index --engine`: the choice of engine is checked before any work starts."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rag.cli import app


def test_an_unknown_engine_is_refused_with_the_valid_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["index", "--corpus", str(tmp_path), "--out", str(tmp_path / "i"), "--engine", "x"]
    )
    assert result.exit_code == 2
    assert "local, ray" in result.output
    assert not (tmp_path / "i").exists()


def test_an_address_needs_the_ray_engine(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["index", "--corpus", str(tmp_path), "--out", str(tmp_path / "i"), "--address", "auto"]
    )
    assert result.exit_code == 2
    assert "--engine ray" in result.output
