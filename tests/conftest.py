"""Shared fixtures: the real corpus indexed once per session with the real packaged models."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.config import ReaderKind, Settings
from rag.pipeline import Pipeline, load_components
from rag.store.builder import IndexBuilder

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"


def make_settings(**overrides: object) -> Settings:
    """Settings independent of the developer's environment and .env file."""
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    return base.model_copy(update=overrides)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    return CORPUS


@pytest.fixture(scope="session")
def builder() -> IndexBuilder:
    """One builder (and so one loaded embedding model and spaCy) for the whole session."""
    return IndexBuilder.from_settings(make_settings())


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory, builder: IndexBuilder) -> Path:
    path = tmp_path_factory.mktemp("index")
    builder.build(CORPUS, path)
    return path


@pytest.fixture(scope="session")
def settings(index_dir: Path) -> Settings:
    return make_settings(index_dir=index_dir, corpus_dir=CORPUS)


@pytest.fixture(scope="session")
def heuristic_pipeline(settings: Settings) -> Pipeline:
    s = settings.model_copy(update={"reader": ReaderKind.HEURISTIC})
    return Pipeline(s, load_components(s))


@pytest.fixture(scope="session")
def pipeline(settings: Settings) -> Pipeline:
    """The default pipeline, exactly as served."""
    return Pipeline(settings, load_components(settings))


@pytest.fixture()
def corpus_copy(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    yield target


@pytest.fixture(scope="session")
def two_versions(
    index_dir: Path, builder: IndexBuilder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """Two built version folders that differ: the corpus, and the corpus less one letter."""
    from rag.store.layout import resolve_version

    corpus = tmp_path_factory.mktemp("corpus-less-one")
    shutil.copytree(CORPUS, corpus, dirs_exist_ok=True)
    (corpus / "rudd-2016-10-24.txt").unlink()
    smaller = tmp_path_factory.mktemp("index-less-one")
    builder.build(corpus, smaller)
    return resolve_version(index_dir), resolve_version(smaller)
