"""Video I/O: read frames from video files or frame folders, sample frame indices, write mp4/gif.

Frames are always ``np.ndarray`` of shape (N, H, W, 3), dtype uint8, RGB. Frame indices are 0-based
positions in presentation order.

Reading a file never decodes the whole video into memory. :meth:`VideoReader.get_frames` decodes forward
from the current decoder position to nearby frames, and for far jumps (or going back) seeks to the keyframe
at or before the wanted frame and decodes forward from there. To know which frame a decoded picture is,
the reader maps timestamps (pts) to frame indices in one of three ways:

- grid: mp4/mov at a constant frame rate: pts = start + index * step, from the header alone (no scan).
  Every decoded pts is checked to lie on that grid; the first one that does not switches to "index".
  Where a far seek would land is found first on a second container (seek + read one packet), so the
  reader decodes on instead when that keyframe is behind the current position.
- index: the file is demuxed once (packets are read, not decoded) to list every frame's pts and keyframe
  flag. Used for containers without a reliable frame count (avi/mkv/webm), which need the scan to count
  frames anyway, and for variable frame rate mp4. Exact; seeks go straight to the right keyframe.
- count: packets without timestamps (some avi): frames are counted while decoding; going back reopens.
"""

from __future__ import annotations

import bisect
import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from regionlm.errors import VideoError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Containers whose header frame count comes from the sample table (stts), so it is exact.
_EXACT_COUNT_FORMATS = ("mov", "mp4")


class _OffGrid(Exception):
    """A decoded pts is not on the constant-frame-rate grid: the video needs the exact index."""


class VideoReader:
    """Random access to the frames of a video file (mp4/avi/webm/..., via PyAV) or a folder of frames.

    A frame folder holds .jpg/.jpeg/.png images, in name order; ``folder_fps`` is the frame rate it reports
    (it has none of its own; files report their own rate). Use as a context manager or call :meth:`close`.
    ``stats`` counts seeks and decoded frames.
    """

    def __init__(self, path: str | os.PathLike, folder_fps: float | None = None):
        self.path = Path(path)
        self._container = None
        self._files: list[Path] | None = None
        self.stats = {"seeks": 0, "decoded": 0}
        if not self.path.exists():
            raise VideoError(f"video not found: {self.path}")
        if self.path.is_dir():
            self._open_folder(folder_fps)
        else:
            self._open_file()

    # ------------------------------------------------------------------ opening
    def _open_folder(self, folder_fps):
        self._files = sorted(p for p in self.path.iterdir()
                             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self._files:
            raise VideoError(f"frame folder {self.path} has no .jpg/.png images")
        self.num_frames = len(self._files)
        self.fps = folder_fps
        self.height = self.width = None
        first = self._read_image(0)
        self.height, self.width = first.shape[:2]

    def _open_file(self):
        import av

        self._container = self._open_container()
        if not self._container.streams.video:
            self.close()
            raise VideoError(f"video {self.path} has no video stream")
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = float(rate) if rate else None
        self.width, self.height = stream.codec_context.width, stream.codec_context.height

        self._mode = None  # "grid", "index" or "count" (see the module docstring)
        self._grid = None  # (start pts, pts step) in "grid" mode
        self._pts: list[int] = []  # "index" mode: pts of each frame, in presentation order
        self._pts_to_index: dict[int, int] = {}
        self._keyframes: list[int] = []  # "index" mode: frame indices of keyframes, sorted
        self._seek_ts: dict[int, int] = {}  # "index" mode: keyframe index -> timestamp to seek to
        self._decoder = None  # iterator over the decoded frames from the current position
        self._probe = None  # "grid" mode: a second container, to find keyframes without decoding
        self._used = False  # whether self._container was read from (then going back means reopening)
        self._after_seek = False  # whether the decoder position comes from a seek (else from frame 0)
        self._last = None  # index of the frame the decoder gave last (-1: at the start; None: unknown)
        self._duration_frames = None  # frame count implied by the header's duration (truncation hint)

        fmts = self._container.format.name.split(",")
        if stream.frames > 0 and any(f in fmts for f in _EXACT_COUNT_FORMATS):
            self.num_frames = stream.frames
            step = Fraction(stream.duration or 0, stream.frames)
            constant_rate = stream.average_rate and stream.average_rate == stream.base_rate
            if constant_rate and step.denominator == 1 and step > 0:
                self._mode, self._grid = "grid", (stream.start_time or 0, int(step))
            else:
                self._build_index()
        else:
            # avi/mkv/webm headers have no frame count or an unreliable one: count packets instead.
            self._build_index()
            self.num_frames = len(self._pts)
            if self._container.duration and self.fps:
                self._duration_frames = round(self._container.duration / av.time_base * self.fps)
        if self.num_frames == 0:
            self.close()
            raise VideoError(f"video {self.path} is empty (0 frames)")
        self._restart()
        if not (self.width and self.height):  # some streams only know their size once decoded
            frame = next(self._decode_from_here(), None)
            if frame is None:
                raise VideoError(f"video {self.path} has no decodable frame (the file may be damaged)")
            self.height, self.width = frame.height, frame.width
            self._restart()

    def _open_container(self):
        import av

        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise VideoError(f"cannot open video {self.path}: {reason} (not a video, or the file is damaged "
                             "or truncated)") from None
        if container.streams.video:
            # frame + slice threads; only settable before the decoder opens
            container.streams.video[0].thread_type = "AUTO"
        return container

    def _build_index(self):
        """Demux every packet of the video stream once (no decoding) to map frame index <-> pts."""
        import av

        pts, dts, keys = [], [], []
        try:
            with av.open(str(self.path)) as c:
                for packet in c.demux(c.streams.video[0]):
                    if packet.size == 0:  # flush packet at the end of the stream
                        continue
                    pts.append(packet.pts)
                    dts.append(packet.dts)
                    keys.append(packet.is_keyframe)
        except av.FFmpegError:
            pass  # a damaged tail: keep the packets read so far (a too short index reports truncation)
        self._grid = None
        if any(p is None for p in pts):
            self._mode, self._pts, self._pts_to_index, self._keyframes = "count", [None] * len(pts), {}, [0]
            return
        order = sorted(range(len(pts)), key=pts.__getitem__)  # decode order -> presentation order
        self._mode = "index"
        self._pts = [pts[i] for i in order]
        self._pts_to_index = {p: rank for rank, p in enumerate(self._pts)}
        self._keyframes = [rank for rank, i in enumerate(order) if keys[i]] or [0]
        # Demuxers seek by decoding time (dts <= pts): seeking to a keyframe's dts cannot land after it.
        self._seek_ts = {rank: pts[i] if dts[i] is None else dts[i] for rank, i in enumerate(order) if keys[i]}
        self._seek_ts.setdefault(0, self._pts[0] if self._pts else 0)

    # ------------------------------------------------------------------ reading
    def get_frames(self, indices: Iterable[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as (N, H, W, 3) uint8 RGB."""
        indices = [self._check_index(i) for i in indices]
        out = np.empty((len(indices), self.height, self.width, 3), dtype=np.uint8)
        wanted = sorted(set(indices))
        if self._files is not None:
            got = {i: self._read_image(i) for i in wanted}
        else:
            got = self._decode_frames(wanted)
        for k, i in enumerate(indices):
            out[k] = got[i]
        return out

    def __len__(self):
        return self.num_frames

    def _check_index(self, i) -> int:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise VideoError(f"frame index {i!r} for video {self.path} is not an integer")
        i = int(i)
        if i < 0 or i >= self.num_frames:
            hint = ""
            if self._files is None and (self._duration_frames or 0) > self.num_frames + 1:
                hint = (f" (its header's duration suggests about {self._duration_frames} frames: the file "
                        "looks truncated)")
            raise VideoError(f"frame {i} requested but video {self.path} has {self.num_frames} frames{hint}")
        return i

    def _read_image(self, i: int) -> np.ndarray:
        from PIL import Image

        f = self._files[i]
        try:
            with Image.open(f) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise VideoError(f"cannot read image {f}: {e}") from None
        if self.height is not None and arr.shape[:2] != (self.height, self.width):
            raise VideoError(f"image {f} is {arr.shape[1]}x{arr.shape[0]} but the first frame of "
                             f"{self.path} is {self.width}x{self.height}: frames must all have one size")
        return arr

    def _decode_frames(self, wanted: list[int]) -> dict[int, np.ndarray]:
        import av

        if self._mode != "grid" and wanted and wanted[-1] >= len(self._pts):
            raise VideoError(f"video {self.path} is truncated or damaged: its header says {self.num_frames} "
                             f"frames but only {len(self._pts)} are in the file (frame {wanted[-1]} requested)")
        got = {}
        try:
            for target in wanted:
                try:
                    got[target] = self._get_one(target)
                except _OffGrid:
                    # Variable frame rate after all: scan once, then seek exactly. The decoder position
                    # was counted on the wrong grid, so forget it.
                    self._build_index()
                    self._decoder, self._last = None, None
                    return {**got, **self._decode_frames([t for t in wanted if t not in got])}
        except av.FFmpegError as e:
            raise VideoError(f"cannot decode video {self.path}: {e} (the file may be damaged)") from None
        return got

    def _get_one(self, target: int, back: int = 0) -> np.ndarray:
        """Decode frame ``target``; ``back`` > 0 retries a seek that landed after it from further back."""
        if back:
            if target - back > 0 and self._mode != "count":
                self._seek(target - back)
            else:
                self._restart()
        elif not self._forward_is_cheaper(target):
            self._seek(target)
        for frame in self._decode_from_here():
            if self._last > target:
                # Landed after the target: mp4 seeks compare the timestamp with decoding times (dts), so
                # near a keyframe the seek can land on the next keyframe. Retry from further back.
                if not self._after_seek:
                    raise VideoError(f"cannot decode frame {target} of video {self.path}: the decoder "
                                     "skipped it (the file may be damaged)")
                return self._get_one(target, back=max(16, 4 * back))
            if self._last == target:
                return frame.to_ndarray(width=self.width, height=self.height, format="rgb24")
        self._decoder = None
        raise VideoError(f"video {self.path} is truncated or damaged: decoding stopped before frame {target} "
                         f"(its header says {self.num_frames} frames)")

    def _forward_is_cheaper(self, target: int) -> bool:
        """Decode on from the current position (True) or seek (False)?"""
        if self._decoder is None or self._last is None or target <= self._last:
            return False
        if self._mode == "index":
            # Forward unless a keyframe lies in (last + 1, target]: seeking to it skips the frames before it.
            k = bisect.bisect_right(self._keyframes, target) - 1
            return k < 0 or self._keyframes[k] <= self._last + 1
        if self._mode == "grid":
            if target - self._last <= 8:
                return True
            # Keyframes are not known in this mode: ask where a seek would land.
            key = self._probe_keyframe(target)
            return key is None or key <= self._last + 1 or key > target
        return True  # "count": no seeking

    def _probe_keyframe(self, target: int) -> int | None:
        """Index of the keyframe a seek for ``target`` lands on, found by seeking a second container and
        reading one packet (no decoding), so the decoder position of the main container is kept."""
        import av

        if self._probe is None:
            self._probe = av.open(str(self.path))
        stream = self._probe.streams.video[0]
        start, step = self._grid
        self._probe.seek(start + target * step, backward=True, any_frame=False, stream=stream)
        for packet in self._probe.demux(stream):
            return None if packet.pts is None else self._index_of(packet.pts)
        return None

    def _restart(self):
        """Decode from frame 0 again by reopening the container (the one 'seek' every format supports)."""
        if self._used:
            self._container.close()
            self._container = self._open_container()
            self.stats["seeks"] += 1
        self._decoder = self._container.decode(self._container.streams.video[0])
        self._last, self._used, self._after_seek = -1, False, False

    def _seek(self, target: int):
        """Seek to the keyframe at or before ``target`` ("count" mode: back to the start)."""
        if self._mode == "count":
            self._restart()
            return
        if self._mode == "index":
            key = self._keyframes[max(bisect.bisect_right(self._keyframes, target) - 1, 0)]
            pts = self._seek_ts[key]
        else:
            start, step = self._grid
            pts = start + target * step
        stream = self._container.streams.video[0]
        self._container.seek(pts, backward=True, any_frame=False, stream=stream)
        self.stats["seeks"] += 1
        self._decoder = self._container.decode(stream)
        self._last, self._used, self._after_seek = None, True, True  # position known from the next pts

    def _decode_from_here(self):
        """Decoded frames from the current position; keeps ``self._last`` = index of the frame yielded."""
        self._used = True
        for frame in self._decoder:
            self.stats["decoded"] += 1
            idx = self._index_of(frame.pts)
            if idx is None:
                if self._last is None:  # position unknown after a seek: cannot place this frame
                    continue
                idx = self._last + 1
            self._last = idx
            yield frame

    def _index_of(self, pts) -> int | None:
        if pts is None or self._mode == "count":
            return None
        if self._mode == "index":
            return self._pts_to_index.get(pts)
        start, step = self._grid
        q, r = divmod(pts - start, step)
        if r or not 0 <= q < self.num_frames:
            raise _OffGrid
        return q

    # ------------------------------------------------------------------ closing
    def close(self):
        for c in (self._container, getattr(self, "_probe", None)):
            if c is not None:
                c.close()
        self._container = self._probe = None
        self._decoder = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"VideoReader({str(self.path)!r}, num_frames={self.num_frames}, fps={self.fps}, "
                f"size={self.width}x{self.height})")


# ---------------------------------------------------------------------- sampling
def sample_indices(num_frames: int, *, num: int | None = None, fps: float | None = None,
                   video_fps: float | None = None, indices: Sequence[int] | None = None,
                   keep: Iterable[int] = ()) -> list[int]:
    """Choose frame indices of a video with ``num_frames`` frames. Returns a sorted list without repeats.

    Give at most one of:
    - ``num``: uniform, centred segment sampling (as VideoLLaMA2/VideoRefer): the video is cut into ``num``
      equal segments and the middle frame of each is taken. ``num >= num_frames`` gives every frame once.
    - ``fps`` (needs ``video_fps``): one frame every ``video_fps / fps`` frames, the middle one of each step.
    - ``indices``: these frames (checked to be in range).
    None of them: every frame.

    ``keep``: frames that must be in the result (e.g. annotated frames). Each replaces the nearest sampled
    frame that is not itself kept, so the count stays the same (unless there are more kept frames than
    samples: then the result is exactly the kept frames).
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames <= 0:
        raise VideoError(f"cannot sample frames: the video has {num_frames!r} frames")
    given = [name for name, v in (("num", num), ("fps", fps), ("indices", indices)) if v is not None]
    if len(given) > 1:
        raise VideoError(f"give only one of num, fps, indices to sample frames (got {', '.join(given)})")

    if num is not None:
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num <= 0:
            raise VideoError(f"number of frames to sample must be a positive integer, got {num!r}")
        if num >= num_frames:
            result = list(range(num_frames))
        else:
            seg = (num_frames - 1) / num
            # +1e-6 so exact .5 rounds up like VideoLLaMA2's np.round(x + 1e-6), not to even.
            result = sorted({int(math.floor(seg * (i + 0.5) + 0.5 + 1e-6)) for i in range(num)})
    elif fps is not None:
        if not video_fps or video_fps <= 0:
            raise VideoError("sampling at a frame rate needs the video's frame rate (a frame folder has "
                             "none: give its fps)")
        if not fps > 0:
            raise VideoError(f"sampling frame rate must be positive, got {fps!r}")
        step = video_fps / fps
        if step <= 1:
            result = list(range(num_frames))
        else:
            result = sorted({int(step / 2 + k * step) for k in range(int(math.ceil(num_frames / step)))
                             if int(step / 2 + k * step) < num_frames})
    elif indices is not None:
        result = sorted(set(_check_indices(indices, num_frames, "frame index")))
    else:
        result = list(range(num_frames))

    keep = sorted(set(_check_indices(keep, num_frames, "frame to keep")))
    if not keep:
        return result
    if len(keep) >= len(result):
        return keep
    locked = set(keep) & set(result)
    chosen = list(result)
    for k in keep:
        if k in locked:
            continue
        # nearest sampled frame that is not kept; ties go to the earlier frame
        j = min((j for j, v in enumerate(chosen) if v not in locked), key=lambda j: (abs(chosen[j] - k), j))
        chosen[j] = k
        locked.add(k)
    return sorted(chosen)


def _check_indices(values, num_frames, what) -> list[int]:
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise VideoError(f"{what} {v!r} is not an integer")
        if not 0 <= v < num_frames:
            raise VideoError(f"{what} {int(v)} is out of range: the video has {num_frames} frames")
        out.append(int(v))
    return out


def read_video(path, num: int | None = None, fps: float | None = None, indices: Sequence[int] | None = None,
               keep: Iterable[int] = (), folder_fps: float | None = None):
    """Sample and read frames in one call. Returns ``(frames, indices, meta)``.

    ``meta`` = {"path", "num_frames", "fps", "height", "width"} of the whole video.
    """
    with VideoReader(path, folder_fps=folder_fps) as r:
        idx = sample_indices(r.num_frames, num=num, fps=fps, video_fps=r.fps, indices=indices, keep=keep)
        frames = r.get_frames(idx)
        meta = {"path": str(r.path), "num_frames": r.num_frames, "fps": r.fps,
                "height": r.height, "width": r.width}
    return frames, idx, meta


# ---------------------------------------------------------------------- writing
def _as_frames(frames) -> np.ndarray:
    arr = np.asarray(frames) if not isinstance(frames, np.ndarray) else frames
    if arr.ndim == 3:  # grayscale frames
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise VideoError(f"frames must be a non-empty (N, H, W, 3) array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def _atomic_write(path, suffix, write):
    """Write through a temp file in the same folder, then os.replace: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_video(path, frames, fps: float = 8, codec: str = "libx264", options: dict | None = None):
    """Write frames (N, H, W, 3) uint8 RGB as a video (h264/yuv420p in mp4 by default), atomically.

    yuv420p needs even sizes: odd heights/widths are padded by one row/column repeating the edge (bottom/
    right, so pixel coordinates are unchanged). ``options`` are passed to the encoder (e.g. {"crf": "18",
    "g": "8"} for quality and keyframe interval).
    """
    import av

    arr = _as_frames(frames)
    pad_h, pad_w = arr.shape[1] % 2, arr.shape[2] % 2
    if pad_h or pad_w:
        arr = np.pad(arr, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise VideoError(f"fps must be positive, got {fps!r}")

    def write(tmp):
        fmt = _format_for(path)
        # faststart: the index (moov) goes first, so players can start before the whole file arrived.
        muxer_options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        with av.open(tmp, mode="w", format=fmt, options=muxer_options) as c:
            stream = c.add_stream(codec, rate=rate, options=dict(options or {}))
            stream.width, stream.height = arr.shape[2], arr.shape[1]
            stream.pix_fmt = "yuv420p"
            for img in arr:
                c.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            c.mux(stream.encode(None))

    try:
        _atomic_write(path, Path(path).suffix, write)
    except (av.FFmpegError, ValueError, KeyError) as e:  # unknown codec, bad option, size the codec refuses
        raise VideoError(f"cannot write video {path} with codec {codec!r}: {e}") from None


def _format_for(path) -> str | None:
    # The temp file's name is hidden, so give the container format from the real file's extension.
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".avi": "avi", ".webm": "webm",
            ".mkv": "matroska"}.get(Path(path).suffix.lower())


def write_gif(path, frames, fps: float = 8):
    """Write frames (N, H, W, 3) uint8 RGB as a looping GIF (PIL), atomically."""
    from PIL import Image

    arr = _as_frames(frames)
    if not fps > 0:
        raise VideoError(f"fps must be positive, got {fps!r}")
    images = [Image.fromarray(a) for a in arr]

    def write(tmp):
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(1, round(1000 / fps)), loop=0)

    _atomic_write(path, ".gif", write)
