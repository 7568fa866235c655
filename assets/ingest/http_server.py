"""A loopback HTTP server for a local folder, so offline videos reach yt-dlp through the same path as YouTube.

Serves GET and HEAD with single byte-range support (206/416), so yt-dlp's generic extractor and its resuming
downloader behave as they would against a real host. `status_overrides` maps a URL path to an HTTP error status
(e.g. {"/gone.mp4": 404, "/busy.mp4": 429}) to exercise download error handling without the internet.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import threading
import urllib.parse
from typing import Callable, Iterator, Mapping

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with Range support and per-path error statuses; logs nothing."""

    def __init__(self, *args, overrides: Mapping[str, int], **kwargs):
        self._overrides = overrides
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base class
        pass

    def send_head(self):
        path = urllib.parse.urlsplit(self.path).path
        status = self._overrides.get(path)
        if status is not None:
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        fs_path = self.translate_path(self.path)
        if os.path.isdir(fs_path) or "Range" not in self.headers:
            return super().send_head()
        return self._send_range(fs_path)

    def _send_range(self, fs_path: str):
        try:
            f = open(fs_path, "rb")
        except OSError:
            self.send_error(404, "File not found")
            return None
        size = os.fstat(f.fileno()).st_size
        m = _RANGE.match(self.headers["Range"].strip())
        if m is None or (not m[1] and not m[2]):  # multi-range or malformed: serve the whole file (allowed by RFC)
            f.close()
            return super().send_head()
        if m[1]:
            start, end = int(m[1]), int(m[2]) if m[2] else size - 1
        else:  # suffix range: the last N bytes
            start, end = max(0, size - int(m[2])), size - 1
        end = min(end, size - 1)
        if start >= size or start > end:
            f.close()
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(fs_path))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        f.seek(start)
        return _Limited(f, end - start + 1)

    def end_headers(self) -> None:
        if not self._headers_buffer or b"Accept-Ranges" not in b"".join(self._headers_buffer):
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def copyfile(self, source, outputfile) -> None:
        try:
            shutil.copyfileobj(source, outputfile)
        except (BrokenPipeError, ConnectionResetError):  # client stopped reading: normal for probes
            pass


class _Limited:
    """A file object that reads at most n bytes: the body of a 206 response."""

    def __init__(self, f, n: int):
        self._f, self._left = f, n

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._f.read(size)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client hanging up is not worth a traceback
        pass


@contextlib.contextmanager
def serve_directory(folder: str | os.PathLike, status_overrides: Mapping[str, int] | None = None) -> Iterator[str]:
    """Serve `folder` on 127.0.0.1 at an ephemeral port; yields the base URL (no trailing slash)."""
    folder = os.path.abspath(os.fspath(folder))
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"cannot serve {folder}: not a directory")
    handler = functools.partial(_Handler, directory=folder, overrides=dict(status_overrides or {}))
    with serve_handler(handler, name=f"serve:{folder}") as url:
        yield url


@contextlib.contextmanager
def serve_handler(handler: Callable[..., http.server.BaseHTTPRequestHandler],
                  name: str = "serve") -> Iterator[str]:
    """Serve any request handler on 127.0.0.1 at an ephemeral port, one daemon thread per connection; yields the
    base URL (no trailing slash) and stops the server however the block ends."""
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
