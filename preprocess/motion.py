"""Motion vectors accumulated back to the I-frame, and residuals (docs/REPRESENTATION.md sections 2-4).

Definitions: v = dst - src is painted over each block's pixels p where p and p - v lie in the
frame; the trace T_k(p) = T_{k-1}(p - v_k(p)); MV_k(p) = p - T_k(p); R_k(p) = F_k(p) - I(T_k(p)).

Rather than the trace itself the state is what it implies, both warped with the same rule:
  MV_k(p)   = v_k(p) + MV_{k-1}(p - v_k(p))
  I(T_k(p)) = I(T_{k-1}(p - v_k(p)))        (the I-frame warped to frame k: the "prediction")
so a P-frame costs one copy of the state plus, per moving block, constant-offset row copies,
with no per-pixel division or scattered gather. Exact integer arithmetic throughout.

Numba notes: whole-array assignment (a[:] = b) on 2-D arrays and mixed signed/unsigned
arithmetic are both several times slower than the flat loops used here (measured).
"""
import numba
import numpy as np

# the record fields the kernel reads, with FFmpeg's types: it takes them as they are (strided
# views of the records); an all-intra P-frame has no records
_RECORD_FIELDS = (("w", np.uint8), ("h", np.uint8), ("src_x", np.int16), ("src_y", np.int16),
                  ("dst_x", np.int16), ("dst_y", np.int16))
_NO_RECORDS = np.zeros(0, list(_RECORD_FIELDS))


@numba.njit(cache=True, nogil=True)
def _copy(src, dst):
    for i in range(src.shape[0]):
        dst[i] = src[i]


@numba.njit(cache=True, nogil=True)
def _warp(block_w, block_h, src_x, src_y, dst_x, dst_y, width,
          acc_x, acc_y, prediction, new_x, new_y, new_prediction):
    """One P-frame: new state = old state, then every moving block's pixels p (with p and
    p - v in frame) take old state at p - v, the accumulated MV increased by v.
    All images are flat, (H*W) for MV planes and (H*W*3) for the prediction."""
    height = acc_x.shape[0] // width
    _copy(acc_x, new_x)
    _copy(acc_y, new_y)
    _copy(prediction, new_prediction)
    for r in range(block_w.shape[0]):
        # the records' own types (uint8 sizes, int16 positions) widened once
        w, h = np.int64(block_w[r]), np.int64(block_h[r])
        to_x, to_y = np.int64(dst_x[r]), np.int64(dst_y[r])
        dx, dy = to_x - np.int64(src_x[r]), to_y - np.int64(src_y[r])
        if dx == 0 and dy == 0:  # zero vectors write nothing (section 2)
            continue
        x0, y0 = to_x - w // 2, to_y - h // 2
        # 0 <= x < width and 0 <= x - dx < width, likewise for y
        xa, xb = max(x0, 0, dx), min(x0 + w, width, width + dx)
        ya, yb = max(y0, 0, dy), min(y0 + h, height, height + dy)
        offset = dy * width + dx
        for y in range(ya, yb):
            p = y * width + xa
            for i in range(xb - xa):
                new_x[np.uintp(p + i)] = acc_x[np.uintp(p + i - offset)] + dx
                new_y[np.uintp(p + i)] = acc_y[np.uintp(p + i - offset)] + dy
            for i in range(3 * (xb - xa)):
                new_prediction[np.uintp(3 * p + i)] = prediction[np.uintp(3 * (p - offset) + i)]


@numba.njit(cache=True, nogil=True)
def _saturated_outputs(acc_x, acc_y, frame, prediction, mv_out, residual_out,
                       mv_lo, mv_hi, res_lo, res_hi):
    """MV (interleaved x, y) and R = F - prediction, each clipped to [lo, hi]."""
    for i in range(acc_x.shape[0]):
        mv_out[2 * i] = min(max(np.int32(acc_x[i]), mv_lo), mv_hi)
        mv_out[2 * i + 1] = min(max(np.int32(acc_y[i]), mv_lo), mv_hi)
    for i in range(frame.shape[0]):
        r = np.int32(frame[i]) - np.int32(prediction[i])
        residual_out[i] = min(max(r, res_lo), res_hi)


def _range(dtype):
    info = np.iinfo(dtype)
    return max(info.min, -(2 ** 31)), min(info.max, 2 ** 31 - 1)


class GopAccumulator:
    """Accumulates one GOP's P-frames back to its I-frame (sections 3-4)."""

    def __init__(self, iframe):
        self.height, self.width = iframe.shape[:2]
        pixels = self.height * self.width
        self.acc_x = np.zeros(pixels, np.int16)  # MV_0 = 0; |MV| < frame size fits int16
        self.acc_y = np.zeros(pixels, np.int16)
        # I(T_0(p)) = I(p); a copy, since the buffers are recycled and the I-frame is not ours
        self.prediction = np.array(iframe, np.uint8, order="C").reshape(-1)
        self._spare = (np.empty_like(self.acc_x), np.empty_like(self.acc_y),
                       np.empty_like(self.prediction))

    def warp(self, records):
        """Take the next P-frame's motion-vector records (FFmpeg's structured array, or None for
        an all-intra frame); enough for a P-frame whose outputs are not kept."""
        if records is None:
            records = _NO_RECORDS
        new_x, new_y, new_prediction = self._spare
        _warp(*(records[name] for name, _ in _RECORD_FIELDS), self.width,
              self.acc_x, self.acc_y, self.prediction, new_x, new_y, new_prediction)
        self._spare = (self.acc_x, self.acc_y, self.prediction)
        self.acc_x, self.acc_y, self.prediction = new_x, new_y, new_prediction

    def outputs(self, frame, mv_out=None, residual_out=None):
        """The latest P-frame's accumulated MV (H, W, 2; channels x, y; pixels) and residual
        (H, W, 3), given its RGB pixels (H, W, 3) uint8.

        Written into the given C-contiguous arrays, saturating to their dtype: int16 never
        clips, int8 keeps exactly the range the network sees (section 5); without arrays, new
        int16 arrays.
        """
        if mv_out is None:
            mv_out = np.empty((self.height, self.width, 2), np.int16)
        if residual_out is None:
            residual_out = np.empty((self.height, self.width, 3), np.int16)
        if not (mv_out.flags.c_contiguous and residual_out.flags.c_contiguous):
            raise ValueError("outputs must be C-contiguous arrays")
        # the kernel checks no bounds: every array must have the I-frame's size, or it would
        # read and write past their ends
        size = (self.height, self.width)
        shapes = (np.shape(frame), mv_out.shape, residual_out.shape)
        if shapes != ((*size, 3), (*size, 2), (*size, 3)):
            raise ValueError(f"frame, MV and residual arrays of shapes {shapes} for a GOP of "
                             f"{self.width}x{self.height} frames")
        _saturated_outputs(self.acc_x, self.acc_y, np.ascontiguousarray(frame).reshape(-1),
                           self.prediction, mv_out.reshape(-1), residual_out.reshape(-1),
                           *_range(mv_out.dtype), *_range(residual_out.dtype))
        return mv_out, residual_out
