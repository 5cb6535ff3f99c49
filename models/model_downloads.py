"""Downloads of production model weights: resumable, progress-reported, sha256-checked, unpacked.

Weights too large for pip (sherpa-onnx ASR models, CosyVoice) come from their publishers'
release pages. An archive lands in ``MODEL_DIR/downloads/`` as ``NAME.part`` and is renamed only
after its sha256 matches the pinned one; an interrupted download resumes with an HTTP Range
request. Without a network the error names the file to bring by hand and where to put it:
``pull`` then finds it there, checks it and unpacks it. Every unpacked file's sha256 goes into
``.tingshuo-manifest.json`` so ``verify`` can tell a damaged install from a good one later.

A download counts as complete only when its length is known to match: the ``Content-Length``
(or the end of a chunked body) says so, or, where the server sent neither, a follow-up Range
request past the end is refused as unsatisfiable. A body cut short never becomes the file
(it stays ``.part``, to resume) and never reaches the manifest. A model published as loose
files has one sha256 as well: that of its :func:`files_digest` listing, checked before any
file is moved into place.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = ".tingshuo-manifest.json"
CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    pass


@dataclass(frozen=True)
class DownloadableModel:
    key: str
    engine: str
    languages: tuple[str, ...]
    licence: str
    url: str
    sha256: str | None
    """Of the archive; None where the publisher gives none (then ``pull`` needs --sha256 or --trust-unverified)."""
    size_bytes: int | None
    archive_root: str
    """The folder the archive unpacks to (the model's folder under MODEL_DIR)."""
    files: tuple[str, ...] = field(default=())
    """Paths inside ``archive_root`` the engine needs: what ``installed`` and ``verify`` check."""
    file_base_url: str = ""
    """Set for a model published as loose files (a Hugging Face repository): each of ``files`` is
    fetched from ``file_base_url + path`` instead of unpacking ``url``'s archive."""
    note: str = ""

    @property
    def archive_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def installed(self, model_dir: Path) -> bool:
        root = Path(model_dir) / self.archive_root
        return root.is_dir() and all((root / f).exists() for f in self.files)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


Progress = Callable[[int, int | None], None]
"""Called with (bytes so far, total or None)."""


def _range_total(content_range: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range`` header (``bytes 10-99/100``, ``bytes */100``)."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", content_range or "")
    if match is None:
        return None, None
    first, total = match.groups()
    return (int(first) if first is not None else None), (int(total) if total and total != "*" else None)


def download(url: str, dest: Path, *, progress: Progress | None = None, timeout_s: float = 30.0,
             checked_after: bool = False) -> Path:
    """Fetch ``url`` to ``dest``, resuming ``dest.part`` if an earlier attempt left one.

    ``dest`` appears only once the body is known to be whole; a short one raises
    :class:`DownloadError` and stays ``dest.part`` for the next attempt to resume. Where the
    server gives no length and no way to learn it, the download fails unless
    ``checked_after`` (the caller checks a sha256 next, which a short file cannot pass).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310 (https URLs from the catalogue)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing past what the part holds: complete, unless the size says otherwise
            _, size = _range_total(exc.headers.get("Content-Range"))
            if size is not None and size != have:
                part.unlink()
                raise DownloadError(f"{url}: {part} holds {have} bytes, the server's file {size}; "
                                    "removed it, run the command again") from exc
            part.rename(dest)
            return dest
        raise DownloadError(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot reach {url}: {exc}") from exc
    with response:
        resumed = response.status == 206
        first, size = _range_total(response.headers.get("Content-Range"))
        if resumed and first is not None and first != have:
            raise DownloadError(f"{url}: asked to resume at byte {have}, the server sent "
                                f"{response.headers.get('Content-Range')!r}; delete {part} and run the command again")
        length = response.headers.get("Content-Length")
        chunked = "chunked" in response.headers.get("Transfer-Encoding", "").lower()
        total_bytes = (int(length) + (have if resumed else 0)) if length else size
        done = have if resumed else 0
        cut: str | None = None
        with part.open("ab" if resumed else "wb") as fh:
            try:
                while block := response.read(CHUNK_BYTES):
                    fh.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total_bytes)
            except http.client.IncompleteRead as exc:  # a chunked body without its last chunk
                fh.write(exc.partial)
                done += len(exc.partial)
                cut = "the connection closed mid-body"
            except (http.client.HTTPException, OSError) as exc:  # reset, timeout, a malformed chunk
                cut = f"the connection failed ({exc})"
    if cut is None and total_bytes is not None and done != total_bytes:
        cut = f"the connection closed after {done} of {total_bytes} bytes"
    if cut is None and total_bytes is None and not chunked:
        cut = _confirm_whole(url, done, timeout_s=timeout_s, checked_after=checked_after)
    if cut is not None:
        raise DownloadError(f"{url}: {cut}; run the command again to resume from {part}")
    part.rename(dest)
    return dest


def _confirm_whole(url: str, size: int, *, timeout_s: float, checked_after: bool) -> str | None:
    """A body read until the connection closed, with no length: ask for what lies past ``size``.

    Returns None when the server shows that ``size`` is the whole file, else why not."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={size}-"})
    unknown = (f"the server sent no length, so the {size} bytes received cannot be told complete "
               "(give the sha256 with --sha256 to accept it)")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            if response.status == 206:
                return f"the connection closed after {size} bytes, before the end of the file"
            length = response.headers.get("Content-Length")  # a 200: the server ignores Range
            if length is not None:
                return None if int(length) == size else f"the connection closed after {size} of {length} bytes"
    except urllib.error.HTTPError as exc:
        if exc.code == 416:  # nothing past ``size``: it was the whole file
            _, total = _range_total(exc.headers.get("Content-Range"))
            return None if total in (None, size) else f"the connection closed after {size} of {total} bytes"
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        pass
    return None if checked_after else unknown


def _unpack(archive: Path, into: Path) -> None:
    name = archive.name
    if name.endswith((".tar.bz2", ".tar.gz", ".tgz", ".tar.xz", ".tar")):
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")  # refuses absolute paths and links out of the folder
    elif name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if Path(member).is_absolute() or ".." in Path(member).parts:
                    raise DownloadError(f"{archive}: unsafe path {member!r}")
            zf.extractall(into)
    else:
        raise DownloadError(f"{archive}: unknown archive type")


def write_manifest(root: Path) -> dict[str, str]:
    hashes = {str(p.relative_to(root)): sha256_of(p) for p in sorted(root.rglob("*"))
              if p.is_file() and p.name != MANIFEST}
    (root / MANIFEST).write_text(json.dumps(hashes, indent=1), encoding="utf-8")
    return hashes


def verify_install(model: DownloadableModel, model_dir: Path) -> list[str]:
    """Problems with an installed model; empty when every file matches the manifest."""
    root = Path(model_dir) / model.archive_root
    if not root.is_dir():
        return [f"not installed (tingshuo models pull {model.key})"]
    problems = [f"missing {f}" for f in model.files if not (root / f).exists()]
    manifest = root / MANIFEST
    if not manifest.exists():
        return problems + [f"no {MANIFEST}: installed by hand? re-run tingshuo models pull {model.key}"]
    for relative, expected in json.loads(manifest.read_text(encoding="utf-8")).items():
        path = root / relative
        if not path.exists():
            problems.append(f"missing {relative}")
        elif sha256_of(path) != expected:
            problems.append(f"{relative} changed since it was installed (sha256 differs)")
    return problems


def pull(model: DownloadableModel, model_dir: Path, *, sha256: str | None = None, trust_unverified: bool = False,
         progress: Progress | None = None) -> Path:
    """Download (or find), check and unpack ``model``; returns its folder."""
    expected = (sha256 or model.sha256 or "").lower() or None
    if expected is None and not trust_unverified:
        raise DownloadError(
            f"{model.key}: no sha256 is pinned for {model.archive_name}. Get it from the publisher "
            f"({model.url.rsplit('/', 1)[0]}) and pass --sha256 HEX, or pass --trust-unverified.")
    if model.file_base_url:
        return _pull_files(model, Path(model_dir), expected=expected, progress=progress)
    downloads = Path(model_dir) / "downloads"
    archive = downloads / model.archive_name
    if not archive.exists():
        try:
            download(model.url, archive, progress=progress, checked_after=expected is not None)
        except DownloadError as exc:
            raise DownloadError(
                f"{exc}\nWithout a network: fetch {model.url} on another machine, copy it to {archive} "
                f"and run `tingshuo models pull {model.key}` again.") from exc
    actual = sha256_of(archive)
    if expected is not None and actual != expected:
        bad = archive.with_name(archive.name + ".bad")
        archive.rename(bad)
        raise DownloadError(f"{archive.name}: sha256 {actual} is not the pinned {expected}; moved aside to {bad}")
    staging = Path(model_dir) / f".unpacking-{model.key}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _unpack(archive, staging)
    unpacked = staging / model.archive_root
    if not unpacked.is_dir():
        raise DownloadError(f"{archive.name} has no folder {model.archive_root}/")
    missing = [f for f in model.files if not (unpacked / f).exists()]
    if missing:
        raise DownloadError(f"{archive.name} lacks {missing}")
    target = Path(model_dir) / model.archive_root
    shutil.rmtree(target, ignore_errors=True)
    unpacked.rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    write_manifest(target)
    return target


def files_digest(hashes: dict[str, str]) -> str:
    """The one sha256 of a loose-file model: of ``sha256sum``'s listing of its files, sorted by path.

    In the model's folder: ``sha256sum $(printf '%s\\n' FILE... | LC_ALL=C sort) | sha256sum``."""
    listing = "".join(f"{hashes[path]}  {path}\n" for path in sorted(hashes))
    return hashlib.sha256(listing.encode()).hexdigest()


def _pull_files(model: DownloadableModel, model_dir: Path, *, expected: str | None,
                progress: Progress | None) -> Path:
    """Loose files, each resumable, into ``MODEL_DIR/downloads/ARCHIVE_ROOT/`` first; checked against
    ``expected`` (a :func:`files_digest`) when given, then moved into ``MODEL_DIR/ARCHIVE_ROOT``.
    Without ``expected`` (--trust-unverified) the manifest written here is what later ``verify``
    runs compare against (trust on first use). Files already installed are kept and checked too."""
    target = model_dir / model.archive_root
    staging = model_dir / "downloads" / model.archive_root
    paths: dict[str, Path] = {}
    for relative in model.files:
        if (target / relative).exists():
            paths[relative] = target / relative
            continue
        dest = paths[relative] = staging / relative
        if dest.exists():
            continue
        url = model.file_base_url + relative
        try:
            download(url, dest, progress=progress, checked_after=expected is not None)
        except DownloadError as exc:
            raise DownloadError(f"{exc}\nWithout a network: fetch {url} on another machine, copy it to {dest} "
                                f"and run the same `tingshuo models pull {model.key}` command again.") from exc
    if expected is not None:
        actual = files_digest({relative: sha256_of(path) for relative, path in paths.items()})
        if actual != expected:
            staged = any(path != target / relative for relative, path in paths.items())
            bad = staging.with_name(staging.name + ".bad")
            if staged:
                shutil.rmtree(bad, ignore_errors=True)
                staging.rename(bad)
            raise DownloadError(f"{model.key}: the files' sha256 {actual} is not the expected {expected}"
                                + (f"; moved the downloaded files aside to {bad}" if staged else
                                   f" (the files installed in {target})"))
    for relative, path in paths.items():
        if path != target / relative:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            path.replace(target / relative)
    shutil.rmtree(staging, ignore_errors=True)
    write_manifest(target)
    return target
