import os
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from regionlm.errors import RegionLMError, VideoError
from regionlm.video import VideoReader, read_video, sample_indices, write_gif, write_video

from shared_data import DATA

DATA = DATA
N, H, W = 40, 48, 64


def make_frames(n=N, h=H, w=W):
    """Frame i: red level 6*i (so the index can be read back despite h264 loss) and a moving green square."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i, ..., 0] = 6 * i
        frames[i, 10:26, i:i + 16, 1] = 255
    return frames


def decode_all(path):
    """Plain sequential decode with PyAV: the reference for random access."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def frames():
    return make_frames()


@pytest.fixture(scope="module")
def mp4(tmp_path_factory, frames):
    path = tmp_path_factory.mktemp("video") / "moving.mp4"
    write_video(path, frames, fps=8, options={"g": "8"})  # a keyframe every 8 frames, so seeks happen
    return path


@pytest.fixture(scope="module")
def seq(mp4):
    return decode_all(mp4)


# ---------------------------------------------------------------------- files
def test_write_and_read_mp4(mp4, frames, seq):
    with VideoReader(mp4) as r:
        assert (r.num_frames, r.fps, r.height, r.width) == (N, 8.0, H, W)
        assert len(r) == N and r.path == mp4
        got = r.get_frames(range(N))
    assert got.shape == (N, H, W, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - frames).mean() < 4  # h264 is lossy
    assert np.array_equal(got, seq)
    assert [round(f[..., 0].mean() / 6) for f in got] == list(range(N))  # the right frames, in order
    assert not [p for p in mp4.parent.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_random_access_equals_sequential(mp4, seq):
    rng = np.random.default_rng(0)
    with VideoReader(mp4) as r:
        for _ in range(15):
            idx = rng.integers(0, N, rng.integers(1, 6)).tolist()
            assert np.array_equal(r.get_frames(idx), seq[idx]), idx
        idx = [39, 0, 20, 20, 5]  # any order, repeats
        assert np.array_equal(r.get_frames(idx), seq[idx])


def test_far_jumps_seek_and_near_reads_decode_forward(mp4, seq):
    with VideoReader(mp4) as r:
        r.get_frames([1, 2])
        r.get_frames([4, 6])  # same GOP, ahead: decode on
        assert r.stats == {"seeks": 0, "decoded": 7}
        assert np.array_equal(r.get_frames([35])[0], seq[35])  # far: seek to keyframe 32, decode 4
        assert r.stats == {"seeks": 1, "decoded": 11}
        assert np.array_equal(r.get_frames([17])[0], seq[17])  # backwards: seek to keyframe 16
        assert r.stats == {"seeks": 2, "decoded": 13}
        assert np.array_equal(r.get_frames([3])[0], seq[3])  # back into the first GOP: reopen
        assert r.stats == {"seeks": 3, "decoded": 17}


@pytest.mark.parametrize("ext, codec", [(".webm", "libvpx-vp9"), (".avi", "mpeg4"), (".mkv", "libx264")])
def test_other_containers(tmp_path, frames, ext, codec):
    path = tmp_path / f"v{ext}"
    write_video(path, frames[:24], fps=8, codec=codec, options={"g": "6"})
    ref = decode_all(path)
    with VideoReader(path) as r:  # these headers have no reliable frame count: packets are counted
        assert (r.num_frames, r.height, r.width) == (24, H, W)
        idx = [20, 3, 3, 12, 23, 0]
        assert np.array_equal(r.get_frames(idx), ref[idx])


def _write_with_pyav(path, frames, fmt=None, pts=None, **options):
    """Write frames with PyAV directly: to make files write_video does not (VFR, raw streams, no faststart)."""
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264", rate=10, options=options)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if pts is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            if pts is not None:
                vf.pts, vf.time_base = pts[i], Fraction(1, 1000)
            c.mux(s.encode(vf))
        c.mux(s.encode(None))


def test_variable_frame_rate_mp4(tmp_path, frames):
    # Frame durations alternate 33/33/50 ms: pts are not on a constant grid, so the reader indexes the file.
    pts = np.cumsum([0] + [50 if i % 3 == 0 else 33 for i in range(1, N)]).tolist()
    path = tmp_path / "vfr.mp4"
    _write_with_pyav(path, frames, pts=pts, g="6", bf="2")
    ref = decode_all(path)
    with VideoReader(path) as r:
        assert r.num_frames == N
        idx = [39, 2, 17, 18, 30, 0, 25]
        assert np.array_equal(r.get_frames(idx), ref[idx])


def test_stream_without_timestamps(tmp_path, frames):
    # A raw h264 stream has no pts at all: frames are counted while decoding, going back reopens the file.
    path = tmp_path / "raw.h264"
    _write_with_pyav(path, frames[:20], fmt="h264", g="5")
    ref = decode_all(path)
    with VideoReader(path) as r:
        assert r.num_frames == 20
        idx = [15, 3, 19, 3, 0]
        assert np.array_equal(r.get_frames(idx), ref[idx])


def test_write_odd_size_and_float_frames(tmp_path):
    frames = make_frames(5, 17, 33)
    write_video(tmp_path / "odd.mp4", frames.astype(np.float32), fps=2.5)
    with VideoReader(tmp_path / "odd.mp4") as r:
        assert (r.height, r.width, r.fps) == (18, 34, 2.5)  # padded to even, bottom/right
        got = r.get_frames(range(5))
    assert np.abs(got[:, :17, :33].astype(int) - frames).mean() < 6


def test_write_overwrites_atomically(tmp_path, frames):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"old")
    write_video(path, frames[:3])
    assert VideoReader(path).num_frames == 3
    with pytest.raises(VideoError, match="shape"):
        write_video(path, np.zeros((3, 8, 8, 4)))  # not RGB: nothing written
    with pytest.raises(VideoError, match="cannot write video .*out.mp4 with codec 'nonesuch'"):
        write_video(path, frames[:2], codec="nonesuch")  # fails mid-write: the old file stays
    assert VideoReader(path).num_frames == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_write_gif(tmp_path, frames):
    write_gif(tmp_path / "a.gif", frames[:6], fps=4)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 6 and im.size == (W, H) and im.info["duration"] == 250
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif"]


def test_read_video(mp4, seq):
    frames, idx, meta = read_video(mp4, num=4, keep=[39])
    assert idx == [5, 15, 24, 39]
    assert np.array_equal(frames, seq[idx])
    assert meta == {"path": str(mp4), "num_frames": N, "fps": 8.0, "height": H, "width": W}
    _, idx, _ = read_video(mp4, fps=2)  # one frame every 4
    assert idx == list(range(2, 40, 4))


# ---------------------------------------------------------------------- errors
def test_missing_empty_and_junk_files(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        VideoReader(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty.mp4"):
        VideoReader(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(os.urandom(3000))
    with pytest.raises(VideoError, match="cannot open video .*junk.mp4"):
        VideoReader(tmp_path / "junk.mp4")


def test_truncated_mp4(tmp_path):
    # Noise frames, so the file is mostly frame data (the index is at the front: write_video uses faststart).
    noisy = np.random.default_rng(0).integers(0, 256, (N, H, W, 3), dtype=np.uint8)
    write_video(tmp_path / "full.mp4", noisy)
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    with VideoReader(tmp_path / "half.mp4") as r:
        assert r.num_frames == N  # the header still says 40
        assert r.get_frames([0, 5]).shape == (2, H, W, 3)  # what is there can be read
        with pytest.raises(VideoError, match="half.mp4 is truncated"):
            r.get_frames([N - 1])


def test_truncated_mp4_without_faststart(tmp_path, frames):
    # A plain mp4 keeps its index at the end: cut in half it cannot be opened at all.
    path = tmp_path / "plain.mp4"
    _write_with_pyav(path, frames)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="damaged or truncated"):
        VideoReader(path)


def test_index_errors(mp4):
    with VideoReader(mp4) as r:
        with pytest.raises(VideoError, match=f"frame 57 requested but video {mp4} has 40 frames"):
            r.get_frames([3, 57])
        with pytest.raises(VideoError, match="frame -1 requested"):
            r.get_frames([-1])
        with pytest.raises(VideoError, match="not an integer"):
            r.get_frames([1.5])
        assert r.get_frames([]).shape == (0, H, W, 3)


def test_errors_are_regionlm_errors():
    assert issubclass(VideoError, RegionLMError)


# ---------------------------------------------------------------------- frame folders
def test_frame_folder(tmp_path, frames):
    for i, f in enumerate(frames[:12]):
        Image.fromarray(f).save(tmp_path / f"{i:05d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    with VideoReader(tmp_path) as r:
        assert (r.num_frames, r.fps, r.height, r.width) == (12, None, H, W)
        assert np.array_equal(r.get_frames([11, 0, 5]), frames[[11, 0, 5]])  # png: lossless
    assert VideoReader(tmp_path, folder_fps=24).fps == 24


def test_frame_folder_errors(tmp_path, frames):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(VideoError, match="no .jpg/.png images"):
        VideoReader(empty)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(frames[0]).save(mixed / "0.png")
    Image.fromarray(frames[1, :20]).save(mixed / "1.png")
    (mixed / "2.jpg").write_bytes(b"not a jpeg")
    with VideoReader(mixed) as r:
        with pytest.raises(VideoError, match=r"1.png is 64x20 but the first frame .* is 64x48"):
            r.get_frames([1])
        with pytest.raises(VideoError, match="cannot read image .*2.jpg"):
            r.get_frames([2])
        with pytest.raises(VideoError, match="frame 3 requested .* has 3 frames"):
            r.get_frames([3])


# ---------------------------------------------------------------------- sampling
def test_sample_uniform_centred():
    assert sample_indices(40, num=4) == [5, 15, 24, 34]
    assert sample_indices(100, num=1) == [50]
    assert sample_indices(5, num=8) == [0, 1, 2, 3, 4]  # more than there are: every frame once
    idx = sample_indices(1000, num=16)
    assert len(idx) == 16 and idx == sorted(set(idx)) and idx == sample_indices(1000, num=16)
    assert sample_indices(7) == list(range(7))


def test_sample_fps_and_indices():
    assert sample_indices(100, fps=1, video_fps=30) == [15, 45, 75]
    assert sample_indices(10, fps=60, video_fps=30) == list(range(10))
    assert sample_indices(10, indices=[7, 2, 2, 0]) == [0, 2, 7]


def test_sample_keep():
    assert sample_indices(40, num=4, keep=[0]) == [0, 15, 24, 34]
    assert sample_indices(40, num=4, keep=[14, 16]) == [5, 14, 16, 34]
    assert sample_indices(40, num=4, keep=[15]) == [5, 15, 24, 34]  # already there
    assert sample_indices(40, num=2, keep=[1, 2, 3]) == [1, 2, 3]  # more kept than sampled
    assert sample_indices(100, fps=1, video_fps=30, keep=[99]) == [15, 45, 99]
    assert len(sample_indices(1000, num=32, keep=range(0, 1000, 50))) == 32


@pytest.mark.parametrize("kwargs, words", [
    (dict(num=4, fps=1, video_fps=30), "only one"),
    (dict(num=0), "positive"),
    (dict(fps=2), "frame rate"),
    (dict(fps=-1, video_fps=30), "positive"),
    (dict(indices=[1, 40]), "out of range"),
    (dict(indices=[-1]), "out of range"),
    (dict(indices=[1.0]), "not an integer"),
    (dict(num=4, keep=[40]), "frame to keep 40 is out of range"),
])
def test_sample_errors(kwargs, words):
    with pytest.raises(VideoError, match=words):
        sample_indices(40, **kwargs)
    with pytest.raises(VideoError, match="0 frames"):
        sample_indices(0, num=4)


# ---------------------------------------------------------------------- real data (read-only)
def test_real_mp4():
    path = DATA / "bedroom.mp4"
    if not path.exists():
        pytest.skip(f"{path} not available")
    ref = decode_all(path)
    with VideoReader(path) as r:
        assert (r.num_frames, r.width, r.height, r.fps) == (200, 960, 540, 30.0)
        idx = [0, 100, 199]
        assert np.array_equal(r.get_frames(idx), ref[idx])
        # Its only keyframe is frame 0, so decoding on beats seeking: each frame decoded once.
        assert r.stats["decoded"] == 200
        assert np.array_equal(r.get_frames([150, 10]), ref[[150, 10]])


def test_real_frame_folder():
    path = DATA / "davis-car-shadow" / "frames"
    if not path.exists():
        pytest.skip(f"{path} not available")
    with VideoReader(path, folder_fps=24) as r:
        assert (r.num_frames, r.width, r.height, r.fps) == (40, 854, 480, 24)
        got = r.get_frames([0, 39])
    assert np.array_equal(got[1], np.asarray(Image.open(path / "00039.jpg").convert("RGB")))
    frames, idx, meta = read_video(path, num=8, keep=[39])
    assert frames.shape == (8, 480, 854, 3) and idx[-1] == 39 and meta["fps"] is None
