"""Accumulated motion vectors and residuals: physics, and equality with a literal reference."""
import numpy as np
import pytest

import reference
import synthetic
from preprocess import store
from preprocess.motion import GopAccumulator

RECORD = np.dtype([("source", "i4"), ("w", "u1"), ("h", "u1"), ("src_x", "i2"), ("src_y", "i2"),
                   ("dst_x", "i2"), ("dst_y", "i2")])


def random_records(rng, height, width):
    """A macroblock grid, some blocks split into 8x8, random vectors reaching out of frame."""
    records = []
    for my in range(0, height, 16):
        for mx in range(0, width, 16):
            if rng.random() < 0.1:
                continue  # intra block: no record
            parts = [(16, mx + 8, my + 8)] if rng.random() < 0.6 else [
                (8, mx + 4 + 8 * (i & 1), my + 4 + 8 * (i >> 1)) for i in range(4)]
            for size, cx, cy in parts:
                vx, vy = rng.integers(-20, 21, 2) * (rng.random() > 0.15)
                records.append((-1, size, size, cx - vx, cy - vy, cx, cy))
    return np.array(records, RECORD)


@pytest.mark.parametrize("seed", range(3))
def test_kernel_equals_reference_on_random_motion(seed):
    # 8x8 and 16x16 blocks, zero vectors, intra blocks, sources outside the frame, a frame
    # size that is not a multiple of 16: every rule of section 2, against the literal code.
    rng = np.random.default_rng(seed)
    height, width = 72, 100
    iframe = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    accumulator = GopAccumulator(iframe)
    trace_y, trace_x = np.mgrid[0:height, 0:width]
    ys, xs = np.mgrid[0:height, 0:width]
    for k in range(6):
        records = random_records(rng, height, width) if k != 3 else None  # k=3: all intra
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        accumulator.warp(records)
        mv, residual = accumulator.outputs(frame)
        vx, vy = reference.motion_field(records, height, width)
        trace_y, trace_x = trace_y[ys - vy, xs - vx], trace_x[ys - vy, xs - vx]
        np.testing.assert_array_equal(mv[..., 0], xs - trace_x)
        np.testing.assert_array_equal(mv[..., 1], ys - trace_y)
        np.testing.assert_array_equal(residual, frame.astype(int) - iframe[trace_y, trace_x])
        # int8 outputs of the same P-frame are the same values saturated to [-128, 127]
        mv8, res8 = np.empty(mv.shape, np.int8), np.empty(residual.shape, np.int8)
        accumulator.outputs(frame, mv8, res8)
        np.testing.assert_array_equal(mv8, mv.clip(-128, 127))
        np.testing.assert_array_equal(res8, residual.clip(-128, 127))


def test_pan_gives_k_times_the_motion(tmp_path, pipeline):
    dx, dy, height, width = 3, -2, 128, 160
    frames = synthetic.pan(30, height, width, dx, dy)
    (tmp_path / "raw" / "pan").mkdir(parents=True)
    synthetic.write_video(tmp_path / "raw" / "pan" / "clip.mkv", frames)
    _, extracted, failures = pipeline(tmp_path / "raw", tmp_path, size=(width, height))
    assert failures == []
    video = store.read_video(extracted, "pan/clip")
    assert video["num_p"].tolist() == [11, 11, 5]  # 30 frames: 12 + 12 + (I + 5 P)
    for g in range(3):
        for k in range(1, video["num_p"][g] + 1):
            margin_x, margin_y = abs(dx) * k + 16, abs(dy) * k + 16
            interior = video["mvs"][g, k - 1, margin_y:-margin_y, margin_x:-margin_x]
            assert (interior[..., 0] == k * dx).mean() > 0.99, (g, k)
            assert (interior[..., 1] == k * dy).mean() > 0.99, (g, k)
            assert np.median(interior[..., 0]) == k * dx and np.median(interior[..., 1]) == k * dy
            residual = np.abs(video["residuals"][g, k - 1, margin_y:-margin_y, margin_x:-margin_x])
            # Motion-compensated: far below the unaligned difference. Even shifts keep the
            # 4:2:0 chroma grid and leave only coding noise; odd shifts resample the chroma.
            unaligned = np.abs(frames[12 * g + k].astype(int) - frames[12 * g]).mean()
            limit = 3 if (k * dx) % 2 == 0 and (k * dy) % 2 == 0 else 12
            assert residual.mean() < limit and residual.mean() < unaligned / 3, (g, k, residual.mean())


def test_moving_square_moves_only_its_own_pixels(tmp_path, pipeline):
    dx, dy, size, height, width = 4, 2, 48, 128, 160
    frames, boxes = synthetic.moving_square(12, height, width, dx, dy, size=size)
    (tmp_path / "raw" / "square").mkdir(parents=True)
    synthetic.write_video(tmp_path / "raw" / "square" / "clip.mkv", frames)
    _, extracted, _ = pipeline(tmp_path / "raw", tmp_path, size=(width, height))
    video = store.read_video(extracted, "square/clip")
    for k in range(1, 12):
        mv = video["mvs"][0, k - 1]
        x0, y0 = boxes[k]
        inside = np.zeros((height, width), bool)
        inside[y0 + 8:y0 + size - 8, x0 + 8:x0 + size - 8] = True  # well inside the square
        near = np.zeros((height, width), bool)  # the square's path so far, plus a block
        near[boxes[0][1] - 16:y0 + size + 16, boxes[0][0] - 16:x0 + size + 16] = True
        assert (mv[~near] == 0).all(), k  # the static background never moves
        # edge blocks mix both motions, and intra-coded ones restart the trace (section 3)
        assert (mv[inside][:, 0] == k * dx).mean() > 0.85 and (mv[inside][:, 1] == k * dy).mean() > 0.85
        assert np.median(mv[inside], axis=0).tolist() == [k * dx, k * dy]


def test_real_clip_equals_reference(tmp_path, clips, pipeline):
    # A real clip (scene cuts, fast motion) after re-encoding, exact int16 storage, compared
    # with the literal reference on every P-frame of every GOP.
    (tmp_path / "raw" / "bikes").mkdir(parents=True)
    (tmp_path / "raw" / "bikes" / "bikes.mp4").write_bytes((clips / "bikes.mp4").read_bytes())
    encoded, extracted, _ = pipeline(tmp_path / "raw", tmp_path, storage="int16")
    video = store.read_video(extracted, "bikes/bikes")
    gops = reference.representation(encoded / "bikes" / "bikes.mp4")
    assert len(gops) == len(video["iframes"]) == 21
    assert sum(len(p) for _, p in gops) + len(gops) == 250
    for g, (iframe, p_frames) in enumerate(gops):
        np.testing.assert_array_equal(video["iframes"][g], iframe)
        assert video["num_p"][g] == len(p_frames)
        for k, (mv, residual) in enumerate(p_frames):
            np.testing.assert_array_equal(video["mvs"][g, k], mv)
            np.testing.assert_array_equal(video["residuals"][g, k], residual)
    # the clip really moves: a test on zeros would prove nothing
    assert np.abs(video["mvs"]).max() > 20
