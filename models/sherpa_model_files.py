"""sherpa-onnx model files: which files a model directory holds, and whether sherpa-onnx can load them.

:mod:`models.sherpa_asr` runs a model; this module finds one. ``models.sherpa_model``
is a catalogue key or a directory: :func:`resolve_model` turns it into a
:class:`SherpaModel` (the catalogue's file list, or :func:`detect_model`'s guess from
the ``*.onnx`` names), and :func:`check_model_files` checks it before sherpa-onnx sees
it, because several malformed inputs (a missing tokens file, a CTC tokens file
without a blank symbol) make sherpa-onnx's C++ call ``exit()`` instead of raising.
Kept apart from the recogniser so the lookup and its errors are testable without
loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.sherpa_catalogue import (
    BY_KEY, CatalogueEntry, ModelFiles, ModelKind, Precision, by_archive_root, check_roles, install_dir,
)


class SherpaModelError(ValueError):
    """The model directory is missing, incomplete or unusable; the message says what to fetch."""


@dataclass(frozen=True, slots=True)
class SherpaModel:
    """A model on disk: its kind, its files and what the catalogue knows about it."""

    kind: ModelKind
    directory: Path
    files: ModelFiles
    """Paths relative to ``directory``."""
    languages: tuple[str, ...]
    modeling_unit: str = ""
    hotwords_bpe_vocab: str | None = None
    entry: CatalogueEntry | None = None
    """The catalogue entry it was unpacked from, if any (for error messages)."""

    def __post_init__(self) -> None:
        check_roles(self.kind, self.files)
        if not self.languages:
            raise ValueError("a sherpa model needs at least one language")

    def path(self, role: str) -> Path:
        return self.directory / self.files.roles()[role]

    def missing(self) -> list[Path]:
        return [self.directory / rel for rel in self.files.roles().values() if not (self.directory / rel).is_file()]

    def describe_source(self) -> str:
        if self.entry is None:
            return f"the sherpa model directory {self.directory}"
        return (f"catalogue model {self.entry.key!r} (run `tingshuo models pull {self.entry.key}`, or download "
                f"{self.entry.url} and unpack it into {self.directory.parent})")


def model_from_catalogue(entry: CatalogueEntry, model_dir: Path, *, precision: Precision) -> SherpaModel:
    return SherpaModel(kind=entry.kind, directory=install_dir(entry, model_dir), files=entry.files_for(precision),
                       languages=entry.languages, modeling_unit=entry.modeling_unit,
                       hotwords_bpe_vocab=entry.hotwords_bpe_vocab, entry=entry)


def _pick(candidates: list[Path], precision: Precision) -> Path | None:
    """Prefer the int8 file on the CPU and the fp32 one otherwise; either when only one exists."""
    if not candidates:
        return None
    int8 = [p for p in candidates if ".int8." in p.name]
    fp32 = [p for p in candidates if ".int8." not in p.name]
    preferred, other = (int8, fp32) if precision == "int8" else (fp32, int8)
    return sorted(preferred or other)[0]


def detect_model(directory: Path, *, precision: Precision, languages: tuple[str, ...]) -> SherpaModel:
    """Work out the kind and files of a model directory that is not (or not known to be) from the catalogue.

    ``joiner*.onnx`` means a transducer, ``encoder*``/``decoder*`` without a joiner a
    paraformer, and a single other ``*.onnx`` a zipformer2 CTC model. A directory
    named after a catalogue archive uses that entry's file list instead.
    """
    entry = by_archive_root(directory.name)
    if entry is not None:
        return model_from_catalogue(entry, directory.parent, precision=precision)
    if not directory.is_dir():
        raise SherpaModelError(f"sherpa model directory {directory} does not exist (models.sherpa_model is "
                               f"neither a catalogue key {sorted(BY_KEY)} nor an existing directory)")
    onnx = sorted(directory.glob("*.onnx"))
    by_role = {role: [p for p in onnx if p.name.startswith(role)] for role in ("encoder", "decoder", "joiner")}
    rest = [p for p in onnx if not any(p in found for found in by_role.values())]

    def name(role: str, candidates: list[Path]) -> str:
        """The chosen file, or the conventional name so that the missing-file error names it."""
        chosen = _pick(candidates, precision)
        return chosen.name if chosen is not None else f"{role}.onnx"

    if by_role["joiner"]:
        kind: ModelKind = "transducer"
        files = ModelFiles(tokens="tokens.txt", encoder=name("encoder", by_role["encoder"]),
                           decoder=name("decoder", by_role["decoder"]), joiner=name("joiner", by_role["joiner"]))
    elif by_role["encoder"] or by_role["decoder"]:
        kind = "paraformer"
        files = ModelFiles(tokens="tokens.txt", encoder=name("encoder", by_role["encoder"]),
                           decoder=name("decoder", by_role["decoder"]))
    elif rest:
        kind = "zipformer2_ctc"
        files = ModelFiles(tokens="tokens.txt", model=name("model", rest))
    else:
        raise SherpaModelError(f"no *.onnx model in the sherpa model directory {directory}")
    return SherpaModel(kind=kind, directory=directory, files=files, languages=languages)


def resolve_model(spec: str, model_dir: Path, *, precision: Precision,
                  default_languages: tuple[str, ...] = ("en",)) -> SherpaModel:
    """``models.sherpa_model``: a catalogue key (under ``model_dir``) or a directory path."""
    if not spec:
        raise SherpaModelError(f"models.sherpa_model is empty: set a catalogue key {sorted(BY_KEY)} "
                               "or the path of an unpacked sherpa-onnx streaming model")
    if spec in BY_KEY:
        return model_from_catalogue(BY_KEY[spec], model_dir, precision=precision)
    return detect_model(Path(spec).expanduser(), precision=precision, languages=default_languages)


def check_model_files(model: SherpaModel) -> None:
    """Fail with every missing file named, and where the files come from."""
    missing = model.missing()
    if missing:
        raise SherpaModelError(f"{model.kind} model incomplete: missing {', '.join(map(str, missing))}; "
                               f"it comes from {model.describe_source()}")
    _check_tokens(model.path("tokens"), model.kind)


def _check_tokens(tokens: Path, kind: ModelKind) -> None:
    """sherpa-onnx exits the process on a tokens file it cannot use; catch the common cases first."""
    symbols = []
    for number, line in enumerate(tokens.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 2 or not parts[-1].lstrip("-").isdigit():
            raise SherpaModelError(f"{tokens}:{number}: expected 'symbol id', got {line!r}")
        symbols.append(parts[0] if len(parts) == 2 else " ")
    if not symbols:
        raise SherpaModelError(f"{tokens} has no tokens")
    if kind == "zipformer2_ctc" and not {"<blk>", "<eps>", "<blank>"} & set(symbols):
        raise SherpaModelError(f"{tokens}: a CTC model's tokens need a blank symbol (<blk>, <eps> or <blank>)")
