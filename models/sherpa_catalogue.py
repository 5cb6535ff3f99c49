"""The sherpa-onnx streaming ASR models tingshuo recommends, and the rules for installing them.

Weights never ship with tingshuo: each entry names the upstream release archive
(``https://github.com/k2-fsa/sherpa-onnx/releases/download/asr-models/NAME.tar.bz2``),
the directory it unpacks to and the files the adapter (:mod:`models.sherpa_asr`)
loads from it. ``tingshuo models pull KEY`` (``SHERPA_MODELS``, :mod:`models.model_downloads`)
downloads an archive, checks its sha256 and unpacks it into
``<models.model_dir>/<archive_root>`` (:func:`install_dir`), which is where the server
looks for it.

Integrity: k2-fsa publishes no checksum files for these archives. An entry's ``sha256``
is pinned only where a published value was found (``sha256_source`` says where);
the others are ``None``, and ``model_downloads.pull``
refuses them unless the user passes ``trust_unverified`` (the CLI's ``--trust-unverified``). To pin one, hash an
archive you trust (``sha256sum NAME.tar.bz2``, ideally fetched twice over
different networks) or take the digest GitHub shows for the asset on the
release page (https://github.com/k2-fsa/sherpa-onnx/releases/tag/asr-models),
then fill it in here. Never guess one: a wrong pin only fails closed, a missing
check fails open.

``size_bytes`` is the approximate archive size, for progress bars and disk-space
checks, never for integrity.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from models.model_downloads import DownloadableModel

ModelKind = Literal["transducer", "paraformer", "zipformer2_ctc"]
Precision = Literal["fp32", "int8"]

RELEASE_BASE = "https://github.com/k2-fsa/sherpa-onnx/releases/download/asr-models"
RELEASE_PAGE = "https://github.com/k2-fsa/sherpa-onnx/releases/tag/asr-models"


@dataclass(frozen=True, slots=True)
class ModelFiles:
    """Paths of the files a model kind needs, relative to the model directory.

    Roles follow sherpa-onnx's factory arguments: ``encoder``/``decoder``/``joiner``
    (transducer), ``encoder``/``decoder`` (paraformer), ``model`` (zipformer2 CTC).
    """

    tokens: str
    encoder: str | None = None
    decoder: str | None = None
    joiner: str | None = None
    model: str | None = None

    def roles(self) -> dict[str, str]:
        """Role -> relative path, for the roles that are set."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


REQUIRED_ROLES: dict[ModelKind, frozenset[str]] = {
    "transducer": frozenset({"tokens", "encoder", "decoder", "joiner"}),
    "paraformer": frozenset({"tokens", "encoder", "decoder"}),
    "zipformer2_ctc": frozenset({"tokens", "model"}),
}


def check_roles(kind: ModelKind, files: ModelFiles) -> None:
    """Raise ValueError if ``files`` does not name exactly the roles ``kind`` loads."""
    have, need = set(files.roles()), REQUIRED_ROLES[kind]
    if have != need:
        raise ValueError(f"a {kind} model needs files {sorted(need)}, got {sorted(have)}")


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    key: str
    """What ``models.sherpa_model`` and ``tingshuo models pull`` take."""
    kind: ModelKind
    url: str
    sha256: str | None
    """Hex sha256 of the archive; None when no published value was found (install needs trust_unverified)."""
    sha256_source: str
    """Where the pin comes from, or where to get one."""
    size_bytes: int
    """Approximate archive size (progress and disk checks only)."""
    archive_root: str
    """The directory the archive unpacks to; also its directory under ``models.model_dir``."""
    languages: tuple[str, ...]
    licence: str
    files: ModelFiles
    """fp32 files: always used with the CUDA provider (int8 ONNX runs partly on the CPU there)."""
    int8_files: ModelFiles | None = None
    """Quantised files, faster on the CPU provider; None when the archive has none."""
    modeling_unit: str = ""
    """How sherpa-onnx encodes hotwords for this model ('cjkchar', 'bpe', 'cjkchar+bpe'); '' = no hotwords."""
    hotwords_bpe_vocab: str | None = None
    """bpe.vocab path for hotwords with a bpe-based modeling unit (sherpa-onnx's scripts/export_bpe_vocab.py
    makes one from bpe.model when the archive lacks it)."""

    def __post_init__(self) -> None:
        check_roles(self.kind, self.files)
        if self.int8_files is not None:
            check_roles(self.kind, self.int8_files)

    def files_for(self, precision: Precision) -> ModelFiles:
        return self.int8_files if precision == "int8" and self.int8_files is not None else self.files

    def required_paths(self, precision: Precision) -> list[str]:
        """Relative paths (under ``archive_root``) the adapter loads at this precision."""
        return list(self.files_for(precision).roles().values())


def _url(name: str) -> str:
    return f"{RELEASE_BASE}/{name}.tar.bz2"


_NO_PIN = f"none published; hash a trusted download or read the asset digest on {RELEASE_PAGE}"

_BILINGUAL_ZIPFORMER = "sherpa-onnx-streaming-zipformer-bilingual-zh-en-2023-02-20"
_BILINGUAL_PARAFORMER = "sherpa-onnx-streaming-paraformer-bilingual-zh-en"
_EN_ZIPFORMER = "sherpa-onnx-streaming-zipformer-en-2023-06-26"
_ZH_CTC = "sherpa-onnx-streaming-zipformer-ctc-multi-zh-hans-2023-12-13"
_EN_CHUNK = "epoch-99-avg-1-chunk-16-left-128"
_ZH_CHUNK = "epoch-20-avg-1-chunk-16-left-128"

CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(
        key="zipformer-bilingual-zh-en-2023-02-20",
        kind="transducer",
        url=_url(_BILINGUAL_ZIPFORMER),
        # Not from k2-fsa: the only published value found is the archiveSha256 pinned in a third-party
        # model catalogue (a TypeScript VoiceModelDefinition next to approximateBytes 511_274_346). A
        # mismatch makes the install fail; re-hash a trusted download and replace it if so.
        sha256="27ffbd9ee24ad186d99acc2f6354d7992b27bcab490812510665fa8f9389c5f8",
        sha256_source="third-party model catalogue (archiveSha256 with approximateBytes 511274346); not k2-fsa",
        size_bytes=511_274_346,
        archive_root=_BILINGUAL_ZIPFORMER,
        languages=("zh", "en"),
        licence="not stated upstream (community model pfluo/k2fsa-zipformer-chinese-english-mixed); check first",
        files=ModelFiles(tokens="tokens.txt", encoder="encoder-epoch-99-avg-1.onnx",
                         decoder="decoder-epoch-99-avg-1.onnx", joiner="joiner-epoch-99-avg-1.onnx"),
        int8_files=ModelFiles(tokens="tokens.txt", encoder="encoder-epoch-99-avg-1.int8.onnx",
                              decoder="decoder-epoch-99-avg-1.onnx", joiner="joiner-epoch-99-avg-1.int8.onnx"),
        modeling_unit="cjkchar+bpe",
        hotwords_bpe_vocab="bpe.vocab",
    ),
    CatalogueEntry(
        key="paraformer-bilingual-zh-en",
        kind="paraformer",
        url=_url(_BILINGUAL_PARAFORMER),
        sha256=None,
        sha256_source=_NO_PIN,
        size_bytes=1_000_000_000,  # encoder 607 MB + decoder 218 MB + int8 copies, bzip2'd: about 1 GB
        archive_root=_BILINGUAL_PARAFORMER,
        languages=("zh", "en"),
        licence="Apache-2.0 (model card); converted from FunASR's paraformer online zh-cn-16k-common-vocab8404",
        files=ModelFiles(tokens="tokens.txt", encoder="encoder.onnx", decoder="decoder.onnx"),
        int8_files=ModelFiles(tokens="tokens.txt", encoder="encoder.int8.onnx", decoder="decoder.int8.onnx"),
    ),
    CatalogueEntry(
        key="zipformer-en-2023-06-26",
        kind="transducer",
        url=_url(_EN_ZIPFORMER),
        sha256=None,
        sha256_source=_NO_PIN,
        size_bytes=296_000_000,
        archive_root=_EN_ZIPFORMER,
        languages=("en",),
        licence="Apache-2.0 (icefall recipe; trained on LibriSpeech, CC BY 4.0)",
        files=ModelFiles(tokens="tokens.txt", encoder=f"encoder-{_EN_CHUNK}.onnx",
                         decoder=f"decoder-{_EN_CHUNK}.onnx", joiner=f"joiner-{_EN_CHUNK}.onnx"),
        int8_files=ModelFiles(tokens="tokens.txt", encoder=f"encoder-{_EN_CHUNK}.int8.onnx",
                              decoder=f"decoder-{_EN_CHUNK}.onnx", joiner=f"joiner-{_EN_CHUNK}.int8.onnx"),
        modeling_unit="bpe",
        hotwords_bpe_vocab="bpe.vocab",
    ),
    CatalogueEntry(
        key="zipformer-ctc-zh-2023-12-13",
        kind="zipformer2_ctc",
        url=_url(_ZH_CTC),
        sha256=None,
        sha256_source=_NO_PIN,
        size_bytes=330_000_000,  # extracted: 252 MB fp32 + 68 MB int8 model + tokens/bpe.model
        archive_root=_ZH_CTC,
        languages=("zh",),
        licence="Apache-2.0 (icefall multi_zh-hans recipe, 14k hours of open Mandarin corpora)",
        files=ModelFiles(tokens="tokens.txt", model=f"ctc-{_ZH_CHUNK}.onnx"),
        int8_files=ModelFiles(tokens="tokens.txt", model=f"ctc-{_ZH_CHUNK}.int8.onnx"),
    ),
)

BY_KEY: dict[str, CatalogueEntry] = {e.key: e for e in CATALOGUE}


def _downloadable(entry: CatalogueEntry) -> DownloadableModel:
    """The entry as ``tingshuo models pull`` sees it: every model file of both precisions must be unpacked."""
    files = tuple(dict.fromkeys([*entry.required_paths("fp32"), *entry.required_paths("int8")]))
    return DownloadableModel(key=entry.key, engine="sherpa-onnx", languages=entry.languages, licence=entry.licence,
                             url=entry.url, sha256=entry.sha256, size_bytes=entry.size_bytes,
                             archive_root=entry.archive_root, files=files, note=f"sha256: {entry.sha256_source}")


SHERPA_MODELS: tuple[DownloadableModel, ...] = tuple(_downloadable(e) for e in CATALOGUE)
"""What models/download_catalogue.py offers to ``tingshuo models pull``."""


def lookup(key: str) -> CatalogueEntry:
    try:
        return BY_KEY[key]
    except KeyError:
        raise KeyError(f"no sherpa model {key!r} in the catalogue; known: {sorted(BY_KEY)}") from None


def by_archive_root(name: str) -> CatalogueEntry | None:
    """The entry a directory of that name was unpacked from, if any."""
    return next((e for e in CATALOGUE if e.archive_root == name), None)


def install_dir(entry: CatalogueEntry, model_dir: Path) -> Path:
    return model_dir / entry.archive_root
