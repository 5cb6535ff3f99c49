"""The sherpa-onnx model catalogue: complete entries, and no install without a verified checksum."""

from __future__ import annotations

import dataclasses
import re

import pytest

from models.sherpa_catalogue import (
    BY_KEY, CATALOGUE, RELEASE_BASE, REQUIRED_ROLES, CatalogueEntry, ModelFiles,
    by_archive_root, install_dir, lookup,
)


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda e: e.key)
def test_every_entry_is_complete(entry: CatalogueEntry):
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]+", entry.key)
    assert entry.url == f"{RELEASE_BASE}/{entry.archive_root}.tar.bz2" and entry.url.startswith("https://")
    assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    assert entry.sha256_source and entry.licence and entry.languages and entry.size_bytes > 10_000_000
    for precision in ("fp32", "int8"):
        files = entry.files_for(precision)
        assert set(files.roles()) == REQUIRED_ROLES[entry.kind]
        assert all(p and not p.startswith("/") and ".." not in p for p in entry.required_paths(precision))
    assert entry.files_for("fp32") == entry.files, "CUDA always gets the fp32 files"
    assert by_archive_root(entry.archive_root) is entry and lookup(entry.key) is entry


def test_the_recommended_models_are_there():
    kinds = {e.key: e.kind for e in CATALOGUE}
    assert kinds["zipformer-bilingual-zh-en-2023-02-20"] == "transducer"
    assert kinds["paraformer-bilingual-zh-en"] == "paraformer"
    assert kinds["zipformer-en-2023-06-26"] == "transducer"
    assert kinds["zipformer-ctc-zh-2023-12-13"] == "zipformer2_ctc"
    assert len(BY_KEY) == len(CATALOGUE)
    with pytest.raises(KeyError, match="known"):
        lookup("whisper-large")


def test_install_dir_is_the_archive_root_under_model_dir(tmp_path):
    entry = lookup("zipformer-en-2023-06-26")
    assert install_dir(entry, tmp_path) == tmp_path / "sherpa-onnx-streaming-zipformer-en-2023-06-26"


def test_an_entry_must_name_the_files_its_kind_loads():
    with pytest.raises(ValueError, match="joiner"):
        dataclasses.replace(lookup("zipformer-en-2023-06-26"), files=ModelFiles(tokens="t", encoder="e", decoder="d"))


def test_pull_sees_every_entry_with_both_precisions_files():
    from models.sherpa_catalogue import SHERPA_MODELS

    assert [m.key for m in SHERPA_MODELS] == [e.key for e in CATALOGUE]
    for model, entry in zip(SHERPA_MODELS, CATALOGUE):
        assert (model.url, model.sha256, model.archive_root) == (entry.url, entry.sha256, entry.archive_root)
        assert set(model.files) == set(entry.required_paths("fp32")) | set(entry.required_paths("int8"))
