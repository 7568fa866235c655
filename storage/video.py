"""Video decode and encode through ffmpeg-python and the ffmpeg binary bundled by imageio-ffmpeg.
(Over 400 lines: probe, decode and encode share one ffmpeg process model, its stderr reader and its errors.)

Frames are streamed through pipes one at a time, so memory stays bounded whatever the video's length. There is no
ffprobe in the bundle: `probe` reads the stream header that `ffmpeg -i` prints.

Decoding keeps the source's frames exactly (`-fps_mode passthrough`: nothing duplicated or dropped) unless a target
fps is asked for, and runs with `-xerror`, so a damaged stream ends with an error instead of silently short output.
"""
from __future__ import annotations

import collections
import os
import queue
import re
import subprocess
import threading
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Iterator

import ffmpeg
import numpy as np

_ffmpeg: str | None = None  # this process's choice (use_ffmpeg); None: the bundled binary
# Options that keep ffmpeg off the terminal and make it stop at the first damaged packet.
_GLOBAL = {"hide_banner": None, "nostdin": None, "loglevel": "error", "xerror": None}
_STDERR_LINES = 40


def use_ffmpeg(exe: str | None) -> None:
    """Run `exe` for every decode and encode of this process (None: the bundled binary). The settings' choice
    (MOTIONPIPE_FFMPEG), set once where a process builds its definitions or parses its command line."""
    global _ffmpeg
    _ffmpeg = exe or None


def ffmpeg_exe() -> str:
    """The ffmpeg to run: the one `use_ffmpeg` chose, else the binary shipped inside imageio-ffmpeg."""
    if _ffmpeg:
        return _ffmpeg
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class CorruptVideoError(Exception):
    """A file that is missing, not a video, or whose stream breaks off; the message names the file and why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason.strip() or "unknown ffmpeg error"
        super().__init__(f"corrupt or unreadable video {self.path}: {self.reason}")


class VideoWriteError(RuntimeError):
    """ffmpeg failed while encoding; the message names the target file and ffmpeg's last words."""


@dataclass(frozen=True)
class VideoInfo:
    """Geometry as decoded (rotation applied). n_frames is exact only from `probe(..., count_frames=True)`."""

    width: int
    height: int
    fps: float
    n_frames: int | None
    duration: float | None
    codec: str | None


# ---------------------------------------------------------------------------------------------------- helpers


def exact_fps(fps: float | int | str | Fraction) -> Fraction:
    """An exact frame rate: '30000/1001', or a float snapped to the NTSC rational it rounds from (29.97 -> 30000/1001).

    ffmpeg prints rates rounded to two decimals, so snapping is what lets a 29.97 fps file round-trip exactly.
    """
    if isinstance(fps, str):
        rate = Fraction(fps.strip())
    elif isinstance(fps, Fraction):
        rate = fps
    else:
        value = float(fps)
        if not np.isfinite(value):
            raise ValueError(f"fps must be finite, got {fps!r}")
        rate = Fraction(value).limit_denominator(1_000_000)
        if rate.denominator != 1:
            ntsc = Fraction(round(value * 1.001) * 1000, 1001)
            if ntsc and abs(float(ntsc) - value) <= 1e-4 * value:
                rate = ntsc
            else:
                rate = Fraction(value).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return rate


class _StderrTail:
    """Drains a process's stderr on a thread (so ffmpeg never blocks on a full pipe) and keeps the last lines."""

    def __init__(self, stream: IO[bytes]):
        self._lines: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    self._lines.append(line)

    def join(self) -> None:
        self._thread.join(timeout=5)

    def text(self, n: int = 6) -> str:
        self.join()
        return "\n".join(list(self._lines)[-n:])


def _local_input(path: str | os.PathLike) -> str:
    """Absolute path, so a name starting with '-' or containing 'proto:' is never read as an option or URL."""
    return os.path.abspath(os.fspath(path))


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


# ------------------------------------------------------------------------------------------------------ probe

_STREAM = re.compile(r"Stream #\d+:\d+.*?: Video: (?P<rest>.*)$")
_SIZE = re.compile(r"(?<![\w.])(?P<w>\d{1,5})x(?P<h>\d{1,5})(?![\w])")
_RATE = re.compile(r"(?P<v>\d+(?:\.\d+)?)(?P<k>k?) (?P<unit>fps|tbr)\b")
_DURATION = re.compile(r"Duration: (?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)")
_ROTATION = re.compile(r"rotation of (?P<deg>-?\d+(?:\.\d+)?) degrees")


_STREAM_KIND = re.compile(r"Stream #\S+ (\w+):")
_NO_OUTPUT = "At least one output file must be specified"  # ffmpeg's complaint about our header-only call


def _no_video_reason(lines: list[str]) -> str:
    """Why a file has no usable video stream: what it holds instead (audio only, subtitles, ...), else the end of
    ffmpeg's own message."""
    streams = [line.strip() for line in lines if line.lstrip().startswith("Stream #")]
    kinds = sorted({"cover image" if "(attached pic)" in line else m[1].lower()
                    for line in streams if (m := _STREAM_KIND.search(line))})
    if kinds:
        return f"no video stream: the file holds {' and '.join(kinds)} only ({streams[0]})"
    useful = [line for line in lines if _NO_OUTPUT not in line]
    return "\n".join(useful[-4:]) or "no video stream"


def _parse_header(path: str, text: str) -> VideoInfo:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _STREAM.search(line)
        if m and "(attached pic)" not in line:
            break
    else:
        raise CorruptVideoError(path, _no_video_reason(lines))
    rest = m["rest"]
    size = _SIZE.search(rest)
    if not size:
        raise CorruptVideoError(path, f"no frame size in stream header: {line.strip()}")
    width, height = int(size["w"]), int(size["h"])
    rates = {r["unit"]: float(r["v"]) * (1000 if r["k"] else 1) for r in _RATE.finditer(rest)}
    fps_value = rates.get("fps") or rates.get("tbr")
    if not fps_value:
        raise CorruptVideoError(path, f"no frame rate in stream header: {line.strip()}")
    # The display matrix is printed in the lines after the stream; ffmpeg rotates decoded frames by it.
    for follow in lines[i + 1 : i + 12]:
        if follow.lstrip().startswith("Stream #"):
            break
        rot = _ROTATION.search(follow)
        if rot and round(abs(float(rot["deg"]))) % 180 == 90:
            width, height = height, width
    dur = _DURATION.search(text)
    duration = int(dur["h"]) * 3600 + int(dur["m"]) * 60 + float(dur["s"]) if dur else None
    codec = rest.split(None, 1)[0].rstrip(",") if rest.strip() else None
    return VideoInfo(width, height, float(exact_fps(fps_value)), None, duration, codec)


def count_frames(path: str | os.PathLike) -> int:
    """Exact number of frames the decoder yields (decodes the whole first video stream; slow on long videos)."""
    src = _local_input(path)
    args = (
        ffmpeg.input(src, **_GLOBAL, progress="pipe:1", nostats=None)
        .output("-", map="0:v:0", f="null", fps_mode="passthrough")
        .compile(cmd=ffmpeg_exe())
    )
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True)
    if proc.returncode != 0:
        raise CorruptVideoError(src, _tail(proc.stderr.decode("utf-8", "replace")))
    counts = re.findall(rb"^frame=(\d+)", proc.stdout, flags=re.M)
    if not counts:
        raise CorruptVideoError(src, "ffmpeg reported no frame count")
    return int(counts[-1])


_count = count_frames  # probe's `count_frames` argument shadows the function inside probe


def _tail(text: str, n: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def probe(path: str | os.PathLike, count_frames: bool = False) -> VideoInfo:
    """Read the first video stream's header (size, fps, duration, codec); with count_frames, decode to count."""
    src = _local_input(path)
    if not os.path.isfile(src):
        raise CorruptVideoError(src, "no such file")
    if os.path.getsize(src) == 0:
        raise CorruptVideoError(src, "empty file")
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", src], stdin=subprocess.DEVNULL, capture_output=True
    )
    # Without an output ffmpeg always exits 1; the header it printed is what we want.
    info = _parse_header(src, proc.stderr.decode("utf-8", "replace"))
    if count_frames:
        info = VideoInfo(info.width, info.height, info.fps, _count(src), info.duration, info.codec)
    return info


# ----------------------------------------------------------------------------------------------------- decode


def _output_size(path: str, size: tuple[int, int] | None) -> tuple[int, int]:
    if size is not None and size[0] > 0 and size[1] > 0:
        return int(size[0]), int(size[1])
    info = probe(path)
    if size is None:
        return info.width, info.height
    w, h = size
    if w <= 0 and h <= 0:
        raise ValueError(f"size {size!r}: at most one side may be -1 (keep aspect)")
    if w <= 0:  # keep aspect, even result (what encoders need)
        return max(2, 2 * round(h * info.width / info.height / 2)), h
    return w, max(2, 2 * round(w * info.height / info.width / 2))


def iter_frames(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    fps: float | str | Fraction | None = None,
    prefetch: int = 4,
    threads: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield the video's frames as RGB uint8 arrays (H, W, 3), one frame in memory at a time.

    size=(w, h) scales inside ffmpeg (area filter: anti-aliased and cheap, e.g. for detection on a small copy);
    one side may be -1 to keep the aspect ratio. fps resamples the rate (frames dropped/duplicated by ffmpeg's fps
    filter); without it every source frame comes out exactly once. Closing the generator early kills ffmpeg.
    prefetch: frames read ahead by a thread (bounded memory) so decoding overlaps the caller's work.
    threads: ffmpeg decoding threads (None: ffmpeg's choice, all cores). One thread per video leaves the other
    cores to the caller's per-frame work and to other videos decoded in parallel.
    Raises CorruptVideoError, after the frames that decoded, if the stream breaks off or ffmpeg fails.
    """
    src = _local_input(path)
    if not os.path.isfile(src):
        raise CorruptVideoError(src, "no such file")
    width, height = _output_size(src, size)
    stream = ffmpeg.input(src, **_GLOBAL, **({"threads": threads} if threads else {}))
    out_args: dict = {"format": "rawvideo", "pix_fmt": "rgb24", "fps_mode": "passthrough"}
    if size is None and fps is None:
        node = stream
        out_args["map"] = "0:v:0"
    else:
        node = stream["v:0"]
        if size is not None:
            node = node.filter("scale", width, height, flags="area")
        if fps is not None:
            node = node.filter("fps", fps=str(exact_fps(fps)))
    proc = node.output("pipe:", **out_args).run_async(cmd=ffmpeg_exe(), pipe_stdout=True, pipe_stderr=True)
    stderr = _StderrTail(proc.stderr)
    frame_bytes = width * height * 3
    raw = _raw_frames(proc, src, frame_bytes, stderr)
    frames = _prefetched(raw, prefetch) if prefetch > 0 else raw
    try:
        for buf in frames:
            yield np.frombuffer(buf, np.uint8).reshape(height, width, 3)
    finally:
        _kill(proc)  # first: a reader thread blocked on the pipe then sees EOF
        frames.close()
        proc.stdout.close()
        stderr.join()


def _raw_frames(proc: subprocess.Popen, src: str, frame_bytes: int, stderr: "_StderrTail") -> Iterator[bytearray]:
    while True:
        buf = bytearray(frame_bytes)
        view = memoryview(buf)
        got = 0
        while got < frame_bytes:
            n = proc.stdout.readinto(view[got:])
            if not n:
                break
            got += n
        if got == 0:
            break
        if got < frame_bytes:
            proc.wait()
            raise CorruptVideoError(src, f"stream ended mid-frame ({got}/{frame_bytes} bytes)\n{stderr.text()}")
        yield buf
    if proc.wait() != 0:
        raise CorruptVideoError(src, f"ffmpeg exited {proc.returncode}: {stderr.text()}")


_END = object()


def _prefetched(frames: Iterator[bytearray], depth: int) -> Iterator[bytearray]:
    """Read ahead in a thread so ffmpeg never stalls on a full pipe while the consumer works on a frame.

    A raw 720p frame is 2.7 MB against a 64 KB pipe: without read-ahead, decoding and processing take turns
    instead of overlapping. At most `depth` frames wait in memory.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def pump() -> None:
        try:
            for buf in frames:
                while not stop.is_set():
                    try:
                        q.put(buf, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)

    thread = threading.Thread(target=pump, name="ffmpeg-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # drain so a blocked put returns, then let the thread see `stop`
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


# ----------------------------------------------------------------------------------------------------- encode

_SUBSAMPLED = re.compile(r"^(yuvj?4[12][02]p|nv12|nv21)")


class VideoWriter:
    """Stream RGB frames into ffmpeg; the file appears at `path` only when the block exits cleanly.

    Frames go to a hidden temporary sibling (same extension, so ffmpeg picks the container) that is renamed into
    place on success and deleted on any error. fps is passed as an exact rational (29.97 -> 30000/1001) so probing
    the result gives it back. Odd sizes are rejected with ValueError for chroma-subsampled pixel formats (yuv420p
    needs even sides); crop or pad before writing. Local paths only: publish the result with DataRoot.put_file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | str | Fraction,
        size: tuple[int, int],
        crf: int = 18,
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
        preset: str = "medium",
    ):
        self.path = _local_input(path)
        self.fps = exact_fps(fps)
        self.width, self.height = int(size[0]), int(size[1])
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"{self.path}: frame size must be positive, got {size!r}")
        if _SUBSAMPLED.match(pix_fmt) and (self.width % 2 or self.height % 2):
            raise ValueError(
                f"{self.path}: size {self.width}x{self.height} has an odd side, which {pix_fmt} cannot encode; "
                "crop or pad frames to even width and height"
            )
        self.crf, self.codec, self.pix_fmt, self.preset = crf, codec, pix_fmt, preset
        self.frames_written = 0
        p = Path(self.path)
        self._tmp = str(p.with_name(f".{p.stem}.tmp-{uuid.uuid4().hex[:12]}{p.suffix}"))
        self._proc: subprocess.Popen | None = None
        self._stderr: _StderrTail | None = None

    def __enter__(self) -> "VideoWriter":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        out_args = {"vcodec": self.codec, "pix_fmt": self.pix_fmt, "crf": self.crf, "preset": self.preset}
        if Path(self.path).suffix.lower() in (".mp4", ".mov", ".m4v"):
            out_args["movflags"] = "+faststart"  # index first: streamable, and a truncated copy still decodes
        stream = ffmpeg.input(
            "pipe:", **_GLOBAL, format="rawvideo", pix_fmt="rgb24", s=f"{self.width}x{self.height}",
            framerate=str(self.fps),
        )
        self._proc = stream.output(self._tmp, **out_args).run_async(
            cmd=ffmpeg_exe(), pipe_stdin=True, pipe_stderr=True, overwrite_output=True
        )
        self._stderr = _StderrTail(self._proc.stderr)
        return self

    def write(self, frame: np.ndarray) -> None:
        if self._proc is None:
            raise RuntimeError(f"{self.path}: VideoWriter.write outside its `with` block")
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"{self.path}: frame {self.frames_written} is {frame.dtype}{frame.shape}, "
                f"expected uint8({self.height}, {self.width}, 3)"
            )
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).data)
        except (BrokenPipeError, OSError) as exc:
            self._proc.wait()
            raise VideoWriteError(f"ffmpeg stopped while writing {self.path}: {self._stderr.text()}") from exc
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        proc, self._proc = self._proc, None
        try:
            if exc_type is not None:
                _kill(proc)
                return
            try:
                proc.stdin.close()
            except OSError:
                pass
            rc = proc.wait()
            if rc != 0:
                raise VideoWriteError(f"ffmpeg exited {rc} while writing {self.path}: {self._stderr.text()}")
            if self.frames_written == 0:
                raise VideoWriteError(f"no frames were written to {self.path}")
            os.replace(self._tmp, self.path)
        except BaseException:
            _kill(proc)
            raise
        finally:
            if proc.stdin and not proc.stdin.closed:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            self._stderr.join()
            if os.path.exists(self._tmp):
                os.remove(self._tmp)
