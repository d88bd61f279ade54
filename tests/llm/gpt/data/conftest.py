"""Small indexed datasets written by the real preprocessing code, shared by the data tests."""

import json

import pytest

from nemolite.llm.gpt.data.preprocessing import preprocess_files
from nemolite.llm.tokenizers import ByteTokenizer


def write_jsonl(path, texts, field="text"):
    path.write_text("".join(json.dumps({field: t}) + "\n" for t in texts))
    return path


def make_prefix(directory, name, texts, workers=1):
    source = write_jsonl(directory / f"{name}.jsonl", texts)
    prefix = str(directory / name)
    preprocess_files([str(source)], prefix, ByteTokenizer(), workers=workers, show_progress=False)
    return prefix


@pytest.fixture(scope="session")
def letter_prefixes(tmp_path_factory):
    """Two datasets, one of 'a' documents and one of 'b' documents, of varying lengths."""
    root = tmp_path_factory.mktemp("letters")
    return {letter: make_prefix(root, letter, [letter * (20 + (i * 7) % 50) for i in range(300)])
            for letter in "ab"}


@pytest.fixture(scope="session")
def numbered_prefix(tmp_path_factory):
    """One dataset whose documents say their own number, `<0042>`, several times."""
    root = tmp_path_factory.mktemp("numbered")
    return make_prefix(root, "numbered", [f"<{i:04d}>" * (3 + i % 4) for i in range(400)])


@pytest.fixture
def helpers():
    """`helpers.make_prefix(dir, name, texts)` and `helpers.write_jsonl(path, texts)` for tests."""
    import types

    return types.SimpleNamespace(make_prefix=make_prefix, write_jsonl=write_jsonl)
