"""Synthetic videos with known motion, written losslessly (FFV1) so the only codec in the
loop is the one under test."""
import av
import numpy as np


def texture(height, width, seed):
    """Smooth random RGB texture: block-matching finds its motion unambiguously."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 4 + 2, width // 4 + 2, 3)).astype(np.float32)
    fine = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)[:height, :width]
    kernel = np.ones(5, np.float32) / 5  # box blur rows then columns
    for axis in (0, 1):
        fine = np.apply_along_axis(lambda line: np.convolve(line, kernel, "same"), axis, fine)
    return fine.clip(0, 255).astype(np.uint8)


def write_video(path, frames, fps=25, codec="ffv1"):
    """Write RGB frames (N, H, W, 3) uint8 to path (.mkv, .avi: FFV1, lossless), or with
    another codec (libvpx-vp9 into .webm, as much of Kinetics and SSv2 is downloaded)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def pan(count, height, width, dx, dy, seed=0):
    """A whole-frame pan: the content moves by (+dx, +dy) px from each frame to the next."""
    margin = count * max(abs(dx), abs(dy)) + 8
    scene = texture(height + 2 * margin, width + 2 * margin, seed)
    return np.stack([scene[margin - dy * k:margin - dy * k + height,
                           margin - dx * k:margin - dx * k + width] for k in range(count)])


def moving_square(count, height, width, dx, dy, size=48, start=(24, 24), seed=0):
    """A textured square moving by (dx, dy) px per frame over a static textured background,
    wrapping around the frame's edges (what leaves on the right comes back on the left).

    Returns (frames, boxes) with boxes[k] = (x0, y0) of the square's corner in frame k, taken
    modulo the frame size.
    """
    background = texture(height, width, seed)
    layer, mask = np.zeros_like(background), np.zeros((height, width), bool)
    layer[:size, :size] = texture(size, size, seed + 1) // 2 + 100  # distinct from the background
    mask[:size, :size] = True
    frames, boxes = [], []
    for k in range(count):
        x0, y0 = (start[0] + dx * k) % width, (start[1] + dy * k) % height
        shown = np.roll(mask, (y0, x0), axis=(0, 1))
        frames.append(np.where(shown[..., None], np.roll(layer, (y0, x0), axis=(0, 1)), background))
        boxes.append((x0, y0))
    return np.stack(frames), boxes


def write_m4v(path, frames, fps=25, gop=12):
    """Write RGB frames as a raw MPEG-4 Part 2 elementary stream (.m4v: I- and P-frames, no
    container). Two such files joined end to end decode as one stream."""
    with av.open(str(path), "w", format="m4v") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.gop_size, stream.codec_context.max_b_frames = gop, 0
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_yuv_video(path, luma, u, v, fps=25):
    """Write frames given as planes (FFV1, lossless, yuv420p): luma (N, H, W) uint8 and one
    chroma pair u, v (H/2, W/2) for every frame. Sets whose twins must differ in colour alone
    are made so: their luma, which the encoder's motion search reads, is the same byte for
    byte."""
    height, width = luma.shape[1:]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for plane in luma:
            stacked = np.concatenate([plane, u.reshape(-1, width), v.reshape(-1, width)])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(stacked, format="yuv420p")))
        container.mux(stream.encode())
    return path


QUADRANT_TINT = (-20, 24)  # (U, V) offsets of the warm colour; the cool one is its opposite


def tinted_quadrants(count, size, tinted, moving, axis, speed, seed=0):
    """Planes (luma, u, v) of a scene in four quadrants of grey texture, two of them tinted,
    `tinted` = (warm quadrant, cool quadrant) numbered 0-3 row by row. The texture of quadrant
    tinted[moving] scrolls by `speed` px a frame along axis 0 (x) or 1 (y); the rest is still.

    Content flows in from the frame's edge, towards the centre, and the tint covers a whole
    quadrant (whole macroblocks and chroma blocks): every motion vector then points inside its
    own quadrant, so the accumulated MVs and the residuals never reach another colour and are
    the same whichever colour moves (tests/test_fusion.py checks it byte for byte)."""
    half, margin = size // 2, count * speed + 8
    background = texture(size, size, seed)[..., 0] // 2 + 64
    scene = texture(half + 2 * margin, half + 2 * margin, seed + 1)[..., 0] // 2 + 64
    row, column = divmod(tinted[moving], 2)
    sign = 1 if (column, row)[axis] == 0 else -1  # away from the frame's edge
    luma = np.repeat(background[None], count, axis=0)
    for k in range(count):
        dx, dy = (sign * speed * k, 0) if axis == 0 else (0, sign * speed * k)
        luma[k, row * half:(row + 1) * half, column * half:(column + 1) * half] = scene[
            margin - dy:margin - dy + half, margin - dx:margin - dx + half]
    u = np.full((half, half), 128, np.uint8)
    v = u.copy()
    for quadrant, sign in zip(tinted, (1, -1)):
        row, column = divmod(quadrant, 2)
        window = np.s_[row * half // 2:(row + 1) * half // 2,
                       column * half // 2:(column + 1) * half // 2]
        u[window], v[window] = 128 + sign * QUADRANT_TINT[0], 128 + sign * QUADRANT_TINT[1]
    return luma, u, v
