"""GOP-level sampling (paper section 4.1, docs/REPRESENTATION.md section 6).

A clip is T GOPs, one from each of T equal segments of the video's GOPs: a random one when
training, the centre one when evaluating. From each chosen GOP come its I-frame and one stored
P-frame: a random one when training, a fixed one (the 5th, as the reference) when evaluating.

GOPs without P-frames (a video's last GOP can be a lone I-frame) are not sampled when the
model uses MVs or residuals: their inputs would be zeros the model learns from without anyone
knowing. A video left with no GOP to sample is an error (ClipDataset names it).
"""
import numpy as np

EVAL_P_FRAME = 5  # 1-based position in the GOP of the P-frame used for evaluation
OFFICIAL_VIEWS = ("coviar", "team-net")  # test views that pick frames as official code does


def segment_positions(count, segments, rng=None):
    """One position in [0, count) per segment: random within it (rng) or its centre.
    With fewer positions than segments, positions repeat."""
    edges = np.arange(segments + 1) * count / segments
    if rng is None:
        return np.floor((edges[:-1] + edges[1:]) / 2).astype(np.int64)
    starts = np.floor(edges[:-1]).astype(np.int64)
    ends = np.maximum(np.floor(edges[1:]).astype(np.int64), starts + 1)
    return rng.integers(starts, ends)


def eval_slot(p_stride):
    """The stored slot of evaluation's P-frame (P-frame EVAL_P_FRAME, or the nearest stored
    one where every p_stride-th is stored)."""
    return round((EVAL_P_FRAME - 1) / p_stride)


def eval_frames_read(p_stride, reads_p_frames):
    """How many frames from a GOP's start an evaluation clip reads: its I-frame, and where
    the model reads P-frames (MVs, residuals or rebuilt frames) every one up to that of
    eval_slot (MVs are accumulated from the I-frame on). A GOP cut after them gives the
    same clip: sample_clip takes min(slot, stored - 1), the same for stored counts cut to
    slot + 1."""
    return 1 + (eval_slot(p_stride) * p_stride + 1 if reads_p_frames else 0)


def sample_clip(num_p, segments, needs_p_frames, rng=None, p_stride=1, frames=False):
    """(gops, p_slots) for one clip of a video whose GOPs store num_p[g] P-frames each.

    rng given: training (random GOP per segment, random P-frame); None: evaluation (centre
    GOP, the stored slot of P-frame EVAL_P_FRAME or the GOP's last one if it is shorter).
    frames=True (RGB frames of any position): positions instead of slots, 0 for the I-frame
    and j + 1 for stored slot j, drawn among the I-frame and the stored P-frames.
    """
    num_p = np.asarray(num_p)
    usable = np.flatnonzero(num_p > 0) if needs_p_frames else np.arange(len(num_p))
    if len(usable) == 0:
        raise ValueError("no GOP with P-frames to sample")
    gops = usable[segment_positions(len(usable), segments, rng)]
    slot = eval_slot(p_stride)
    if frames:
        if rng is not None:
            return gops, rng.integers(0, num_p[gops] + 1)
        return gops, np.minimum(slot + 1, num_p[gops])
    counts = np.maximum(num_p[gops], 1)  # I-frame-only models never read the slot
    if rng is not None:
        return gops, rng.integers(0, counts)
    return gops, np.minimum(slot, counts - 1)


def official_test_clip(view, num_p, segments, reads_p_frames, rng=None):
    """(gops, p_slots) of a test clip as an official code's test script picks its frames
    (docs/REPRESENTATION.md section 6), on data that stores every P-frame (p_stride 1):

    - "coviar" (pytorch-coviar's dataset.py): the centre frame of each of T equal segments
      of the video's frames, wherever it falls in its GOP. An I-frame model takes that
      frame's GOP; a model that reads P-frames spaces its frames over the P-frames alone
      (frames 1 to n - 1) and reads the P-frame there, an I-frame position giving the last
      P-frame of the GOP before it.
    - "team-net" (villawang/TEAM-Net's CoviarDataSet_inference): a random frame of each
      segment (drawn from rng), its GOP's I-frame and P-frame EVAL_P_FRAME.

    Segments are those of the official get_seg_range and frame indices are rounded as there
    (numpy's round, halves to even). A GOP shorter than the position read gives its last
    P-frame; a lone I-frame at a video's end gives way to the GOP before it."""
    num_p = np.asarray(num_p)
    length = num_p[0] + 1  # a GOP's frames: every GOP but the last is whole
    frames = len(num_p) + int(num_p.sum())
    if view == "coviar":
        moving = int(reads_p_frames)  # frame 0 is an I-frame: P-frames are 1 to n - 1
        step = (frames - moving - 1) / segments
        index = np.round(step * (np.arange(segments) + 0.5)).astype(np.int64) + moving
        gops, positions = index // length, index % length
        if reads_p_frames:
            before = positions == 0
            gops[before], positions[before] = gops[before] - 1, length - 1
        slots = positions - 1
    else:
        step = (frames - 1) / segments
        begin = np.round(step * np.arange(segments)).astype(np.int64)
        end = np.maximum(np.round(step * np.arange(1, segments + 1)).astype(np.int64),
                         begin + 1)
        gops, slots = rng.integers(begin, end) // length, np.full(segments, eval_slot(1))
    if reads_p_frames:
        usable = np.flatnonzero(num_p > 0)
        if len(usable) == 0:
            raise ValueError("no GOP with P-frames to sample")
        gops = usable[np.maximum(np.searchsorted(usable, gops, side="right") - 1, 0)]
    return gops, np.clip(slots, 0, np.maximum(num_p[gops], 1) - 1)
