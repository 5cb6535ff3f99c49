"""``tingshuo models pull``'s download path against a local HTTP server that speaks Range."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from models.model_downloads import MANIFEST, DownloadableModel, DownloadError, files_digest, pull, verify_install


def make_archive(path: Path, files: dict[str, bytes], root: str = "tiny-model") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


class RangeServer:
    """Serves one byte string; can cut the first response short to play a dropped download."""

    def __init__(self, body: bytes, *, cut_first_at: int | None = None) -> None:
        self.body, self.cut_first_at, self.ranges = body, cut_first_at, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                start = 0
                if rng := self.headers.get("Range"):
                    start = int(rng.split("=")[1].split("-")[0])
                server.ranges.append(start)
                data = server.body[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.cut_first_at is not None:
                    self.wfile.write(data[: server.cut_first_at])
                    server.cut_first_at = None
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/tiny-model.tar.bz2"

    def close(self) -> None:
        self.httpd.shutdown()


FILES = {"model.onnx": b"\x08\x01" * 5000, "tokens.txt": "<blk> 0\n你 1\nhello 2\n".encode()}


def entry(url: str, sha: str | None) -> DownloadableModel:
    return DownloadableModel(key="tiny", engine="sherpa-onnx", languages=("zh", "en"), licence="test", url=url,
                             sha256=sha, size_bytes=None, archive_root="tiny-model", files=("model.onnx", "tokens.txt"))


@pytest.fixture
def archive(tmp_path):
    body = make_archive(tmp_path / "src.tar.bz2", FILES)
    return body, hashlib.sha256(body).hexdigest()


def test_pull_downloads_checks_unpacks_and_verifies(tmp_path, archive):
    body, sha = archive
    server = RangeServer(body)
    seen = []
    try:
        root = pull(entry(server.url, sha), tmp_path / "models", progress=lambda done, total: seen.append((done, total)))
    finally:
        server.close()
    assert (root / "tokens.txt").read_bytes() == FILES["tokens.txt"]
    assert entry(server.url, sha).installed(tmp_path / "models")
    assert seen[-1] == (len(body), len(body))
    assert verify_install(entry(server.url, sha), tmp_path / "models") == []
    (root / "model.onnx").write_bytes(b"tampered")
    assert verify_install(entry(server.url, sha), tmp_path / "models") == [
        "model.onnx changed since it was installed (sha256 differs)"]


def test_an_interrupted_download_resumes_where_it_stopped(tmp_path, archive):
    body, sha = archive
    server = RangeServer(body, cut_first_at=len(body) // 3)
    try:
        with pytest.raises(DownloadError, match="closed after"):
            pull(entry(server.url, sha), tmp_path)  # the connection drops a third of the way in
        assert (tmp_path / "downloads" / "tiny-model.tar.bz2.part").stat().st_size == len(body) // 3
        pull(entry(server.url, sha), tmp_path)
    finally:
        server.close()
    assert server.ranges == [0, len(body) // 3]
    assert (tmp_path / "tiny-model" / "model.onnx").read_bytes() == FILES["model.onnx"]


def test_a_wrong_checksum_is_refused_and_kept_aside(tmp_path, archive):
    body, _ = archive
    server = RangeServer(body)
    try:
        with pytest.raises(DownloadError, match="is not the pinned"):
            pull(entry(server.url, "0" * 64), tmp_path)
    finally:
        server.close()
    assert (tmp_path / "downloads" / "tiny-model.tar.bz2.bad").exists()
    assert not (tmp_path / "tiny-model").exists()


def test_no_pinned_checksum_needs_an_explicit_choice(tmp_path, archive):
    body, sha = archive
    with pytest.raises(DownloadError, match="--sha256"):
        pull(entry("http://127.0.0.1:9/x/tiny-model.tar.bz2", None), tmp_path)
    server = RangeServer(body)
    try:
        pull(entry(server.url, None), tmp_path, sha256=sha)
    finally:
        server.close()
    assert (tmp_path / "tiny-model" / "tokens.txt").exists()


def test_offline_message_names_the_file_to_bring_and_a_brought_file_is_used(tmp_path, archive):
    body, sha = archive
    offline = entry("http://127.0.0.1:9/releases/tiny-model.tar.bz2", sha)  # nothing listens on port 9
    with pytest.raises(DownloadError) as info:
        pull(offline, tmp_path)
    assert str(tmp_path / "downloads" / "tiny-model.tar.bz2") in str(info.value)
    assert offline.url in str(info.value)
    (tmp_path / "downloads" / "tiny-model.tar.bz2").write_bytes(body)  # brought by hand
    assert pull(offline, tmp_path) == tmp_path / "tiny-model"


def test_an_archive_escaping_its_folder_is_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tar:
        info = tarfile.TarInfo("../../evil.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    body = buffer.getvalue()
    server = RangeServer(body)
    try:
        with pytest.raises(tarfile.FilterError):
            pull(entry(server.url, hashlib.sha256(body).hexdigest()), tmp_path / "models")
    finally:
        server.close()
    assert not (tmp_path / "evil.txt").exists()


# -- short reads and wrong bytes (review of issue 12) ------------------------------------------------------------
class FileServer:
    """Serves ``files`` by path; each way a real server can end a body short or send other bytes.

    ``length``: send Content-Length. ``chunked``: chunked transfer encoding instead. ``ranges``: honour
    Range (206 with Content-Range, 416 past the end). ``cut``: path -> bytes after which the first
    response for that path closes the connection (a chunked one mid-chunk, without its last chunk).
    """

    def __init__(self, files: dict[str, bytes], *, length: bool = True, chunked: bool = False, ranges: bool = True,
                 cut: dict[str, int] | None = None) -> None:
        self.files, self.length, self.chunked, self.ranges = files, length, chunked, ranges
        self.cut = dict(cut or {})
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((name, rng))
                # Taken before any byte is sent: a client that leaves after the headers must not
                # leave this handler to take the cut meant for the next request.
                cut = server.cut.pop(name, None)
                body = server.files.get(name)
                self.close_connection = True
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng and server.ranges else 0
                if rng and server.ranges and start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = body[start:]
                self.send_response(206 if rng and server.ranges else 200)
                if rng and server.ranges:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                if server.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                elif server.length:
                    self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                if server.chunked:
                    for i in range(0, len(data), 64):
                        piece = data[i : i + 64]
                        if cut is not None and i + len(piece) > cut:
                            self.wfile.write(b"%x\r\n" % len(piece) + piece[: cut - i])  # mid-chunk, then gone
                            return
                        self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.wfile.write(data if cut is None else data[:cut])

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def archive_entry(server: FileServer, sha: str | None) -> DownloadableModel:
    return entry(server.base + "tiny-model.tar.bz2", sha)


LOOSE = {"model.onnx": b"\x07" * 3000 + b"weights", "sub/tokens.txt": "<blk> 0\n好 1\n".encode()}


def loose_entry(server: FileServer, sha: str | None = None) -> DownloadableModel:
    return DownloadableModel(key="loose", engine="cosyvoice", languages=("zh",), licence="test",
                             url=server.base + "loose", sha256=sha, size_bytes=None, archive_root="loose-model",
                             files=tuple(LOOSE), file_base_url=server.base + "loose/")


def loose_digest(files: dict[str, bytes]) -> str:
    return files_digest({name: hashlib.sha256(data).hexdigest() for name, data in files.items()})


def nothing_installed(model_dir: Path, root: str) -> bool:
    return not (model_dir / root).exists() and not list(model_dir.rglob(MANIFEST))


def test_a_body_cut_without_content_length_is_not_complete_and_resumes(tmp_path, archive):
    body, sha = archive
    with FileServer({"tiny-model.tar.bz2": body}, length=False, cut={"tiny-model.tar.bz2": len(body) // 2}) as server:
        with pytest.raises(DownloadError, match="closed after"):
            pull(archive_entry(server, None), tmp_path, trust_unverified=True)
        assert not (tmp_path / "downloads" / "tiny-model.tar.bz2").exists()
        assert (tmp_path / "downloads" / "tiny-model.tar.bz2.part").stat().st_size == len(body) // 2
        assert nothing_installed(tmp_path, "tiny-model")
        pull(archive_entry(server, None), tmp_path, trust_unverified=True)
    assert (tmp_path / "tiny-model" / "model.onnx").read_bytes() == FILES["model.onnx"]
    half = f"bytes={len(body) // 2}-"
    # the first body, the Range request that found more past it (so: cut), then the rest, whose Content-Range
    # gives the total
    assert server.requests == [("tiny-model.tar.bz2", None), ("tiny-model.tar.bz2", half), ("tiny-model.tar.bz2", half)]
    assert verify_install(archive_entry(server, None), tmp_path) == []


def test_a_whole_body_without_content_length_is_accepted_once_the_server_confirms_its_end(tmp_path, archive):
    body, _ = archive
    with FileServer({"tiny-model.tar.bz2": body}, length=False) as server:
        pull(archive_entry(server, None), tmp_path, trust_unverified=True)
    assert server.requests == [("tiny-model.tar.bz2", None), ("tiny-model.tar.bz2", f"bytes={len(body)}-")]
    assert (tmp_path / "tiny-model" / MANIFEST).exists()


def test_without_length_or_ranges_only_a_checksum_can_accept_a_download(tmp_path, archive):
    body, sha = archive
    with FileServer({"tiny-model.tar.bz2": body}, length=False, ranges=False,
                    cut={"tiny-model.tar.bz2": len(body) // 2}) as server:
        with pytest.raises(DownloadError, match="cannot be told complete"):
            pull(archive_entry(server, None), tmp_path / "a", trust_unverified=True)
        assert nothing_installed(tmp_path / "a", "tiny-model")
        assert not (tmp_path / "a" / "downloads" / "tiny-model.tar.bz2").exists()
        server.cut = {"tiny-model.tar.bz2": len(body) // 2}
        with pytest.raises(DownloadError, match="is not the pinned"):  # short, and the sha256 says so
            pull(archive_entry(server, sha), tmp_path / "b")
        assert nothing_installed(tmp_path / "b", "tiny-model")
        assert (tmp_path / "b" / "downloads" / "tiny-model.tar.bz2.bad").stat().st_size == len(body) // 2
        pull(archive_entry(server, sha), tmp_path / "c")  # whole: the sha256 vouches for it
    assert verify_install(archive_entry(server, sha), tmp_path / "c") == []


def test_a_chunked_body_that_stops_before_its_last_chunk_fails(tmp_path, archive):
    body, sha = archive
    assert len(body) > 100
    with FileServer({"tiny-model.tar.bz2": body}, chunked=True, cut={"tiny-model.tar.bz2": 100}) as server:
        with pytest.raises(DownloadError, match="closed mid-body"):
            pull(archive_entry(server, None), tmp_path, trust_unverified=True)
        assert not (tmp_path / "downloads" / "tiny-model.tar.bz2").exists()
        assert (tmp_path / "downloads" / "tiny-model.tar.bz2.part").stat().st_size <= 100
        assert nothing_installed(tmp_path, "tiny-model")
        pull(archive_entry(server, sha), tmp_path)  # resumes; the pinned sha256 checks the joined file
    assert (tmp_path / "tiny-model" / "tokens.txt").read_bytes() == FILES["tokens.txt"]


def test_an_archive_served_with_other_bytes_fails_its_checksum(tmp_path, archive):
    body, sha = archive
    other = make_archive(tmp_path / "other.tar.bz2", {**FILES, "model.onnx": b"tampered"})
    with FileServer({"tiny-model.tar.bz2": other}) as server:
        with pytest.raises(DownloadError, match="is not the pinned"):
            pull(archive_entry(server, sha), tmp_path / "m")
        with pytest.raises(DownloadError, match="is not the pinned"):
            pull(archive_entry(server, None), tmp_path / "n", sha256=sha)  # --sha256 for an unpinned archive
    for folder in ("m", "n"):
        assert nothing_installed(tmp_path / folder, "tiny-model")
        assert not (tmp_path / folder / "downloads" / "tiny-model.tar.bz2").exists()


def test_loose_files_are_checked_against_the_given_sha256(tmp_path):
    files = {f"loose/{name}": data for name, data in LOOSE.items()}
    with FileServer(files) as server:
        root = pull(loose_entry(server), tmp_path, sha256=loose_digest(LOOSE))
        assert root == tmp_path / "loose-model"
        assert (root / "sub" / "tokens.txt").read_bytes() == LOOSE["sub/tokens.txt"]
        assert verify_install(loose_entry(server), tmp_path) == []
        assert not (tmp_path / "downloads" / "loose-model").exists(), "staged files moved into place"
        pinned = tmp_path / "pinned"
        pull(loose_entry(server, loose_digest(LOOSE)), pinned)  # a catalogue pin works the same way
        assert verify_install(loose_entry(server), pinned) == []
        with pytest.raises(DownloadError, match="--sha256"):
            pull(loose_entry(server), tmp_path / "unpinned")  # neither pinned nor given nor trusted


def test_loose_files_served_with_other_bytes_are_refused_and_not_installed(tmp_path):
    files = {"loose/model.onnx": b"\x07" * 3000 + b"WEIGHTS", "loose/sub/tokens.txt": LOOSE["sub/tokens.txt"]}
    with FileServer(files) as server:
        with pytest.raises(DownloadError, match="is not the expected") as info:
            pull(loose_entry(server), tmp_path, sha256=loose_digest(LOOSE))
        assert loose_digest({k.removeprefix("loose/"): v for k, v in files.items()}) in str(info.value)
        assert nothing_installed(tmp_path, "loose-model")
        assert (tmp_path / "downloads" / "loose-model.bad" / "model.onnx").exists()  # kept aside to look at
        with pytest.raises(DownloadError, match="is not the expected"):
            pull(loose_entry(server, loose_digest(LOOSE)), tmp_path / "pinned")
        assert nothing_installed(tmp_path / "pinned", "loose-model")


def test_a_loose_file_cut_short_is_not_installed_even_unverified(tmp_path):
    files = {f"loose/{name}": data for name, data in LOOSE.items()}
    with FileServer(files, cut={"loose/model.onnx": 1000}) as server:
        with pytest.raises(DownloadError, match="closed after 1000 of"):
            pull(loose_entry(server), tmp_path, trust_unverified=True)
        assert nothing_installed(tmp_path, "loose-model")
        assert not (tmp_path / "downloads" / "loose-model" / "model.onnx").exists()
        pull(loose_entry(server), tmp_path, trust_unverified=True)  # resumes the part
    assert (tmp_path / "loose-model" / "model.onnx").read_bytes() == LOOSE["model.onnx"]
    assert verify_install(loose_entry(server), tmp_path) == []


def test_a_loose_file_without_content_length_cut_short_is_not_installed(tmp_path):
    files = {f"loose/{name}": data for name, data in LOOSE.items()}
    with FileServer(files, length=False, cut={"loose/sub/tokens.txt": 5}) as server:
        with pytest.raises(DownloadError, match="closed after 5 bytes"):
            pull(loose_entry(server), tmp_path, trust_unverified=True)
        assert nothing_installed(tmp_path, "loose-model")


def test_the_loose_files_digest_is_what_the_readmes_shell_line_prints(tmp_path):
    import shutil
    import subprocess

    if shutil.which("sha256sum") is None:
        pytest.skip("no sha256sum")
    for name, data in LOOSE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    line = f"sha256sum $(printf '%s\\n' {' '.join(reversed(LOOSE))} | LC_ALL=C sort) | sha256sum"
    out = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == loose_digest(LOOSE)
