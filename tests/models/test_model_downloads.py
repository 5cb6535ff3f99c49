"""``tingshuo models pull``'s download path against a local HTTP server that speaks Range."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from models.model_downloads import DownloadableModel, DownloadError, pull, verify_install


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
