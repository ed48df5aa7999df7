"""An independent, literal computation of docs/REPRESENTATION.md sections 2-4, and the
official test scripts' frame choices (section 6), for the tests.

It decodes with PyAV directly and follows the definitions word for word (per record, per
block of pixels, trace as explicit coordinates), sharing no code with preprocess/.
"""
import av
import numpy as np


def decode_all(path):
    """[(pict_type name, rgb (H, W, 3) uint8, motion records or None)] for every frame."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for frame in container.decode(stream):
            side = frame.side_data.get("MOTION_VECTORS")
            frames.append((av.video.frame.PictureType(frame.pict_type).name,
                           frame.to_ndarray(format="rgb24"),
                           None if side is None else np.array(side.to_ndarray())))
    return frames


def motion_field(records, height, width):
    """Section 2: v(p) = dst - src where p and p - v are inside the frame; 0 elsewhere."""
    vx, vy = np.zeros((height, width), int), np.zeros((height, width), int)
    for record in [] if records is None else records:
        dx = int(record["dst_x"]) - int(record["src_x"])
        dy = int(record["dst_y"]) - int(record["src_y"])
        if dx == 0 and dy == 0:
            continue
        w, h = int(record["w"]), int(record["h"])
        ys, xs = np.mgrid[int(record["dst_y"]) - h // 2:int(record["dst_y"]) + h // 2,
                          int(record["dst_x"]) - w // 2:int(record["dst_x"]) + w // 2]
        inside = ((xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
                  & (xs - dx >= 0) & (xs - dx < width) & (ys - dy >= 0) & (ys - dy < height))
        vx[ys[inside], xs[inside]] = dx
        vy[ys[inside], xs[inside]] = dy
    return vx, vy


def representation(path):
    """Per GOP: (iframe, [accumulated MV (H, W, 2) int, residual (H, W, 3) int per P-frame])."""
    gops = []
    for kind, rgb, records in decode_all(path):
        height, width = rgb.shape[:2]
        if kind == "I":
            iframe = rgb
            trace_y, trace_x = np.mgrid[0:height, 0:width]  # T_0(p) = p
            gops.append((iframe, []))
            continue
        assert kind == "P", kind
        vx, vy = motion_field(records, height, width)
        ys, xs = np.mgrid[0:height, 0:width]
        # T_k(p) = T_{k-1}(p - v_k(p)), from the old trace into new arrays
        trace_y, trace_x = trace_y[ys - vy, xs - vx], trace_x[ys - vy, xs - vx]
        mv = np.stack([xs - trace_x, ys - trace_y], axis=-1)
        residual = rgb.astype(int) - iframe[trace_y, trace_x].astype(int)
        gops[-1][1].append((mv, residual))
    return gops


# The official test scripts' frame choices, written out as they are (pytorch-coviar
# dataset.py, villawang/TEAM-Net dataset/dataset_fuse.py), for GOPs of 12 frames.

def official_range(n, segments, seg, p_frames):
    """get_seg_range: segment seg's frames [begin, end) of an n-frame video (P-frames only:
    p_frames True)."""
    n -= p_frames
    size = float(n - 1) / segments
    begin, end = int(np.round(size * seg)), int(np.round(size * (seg + 1)))
    end = begin + 1 if end == begin else end
    return (begin + 1, end + 1) if p_frames else (begin, end)


def official_coviar_test(n, segments, seg, p_frames):
    """CoViAR's _get_test_frame_index and get_gop_pos: (GOP, position in it) of segment seg."""
    n -= p_frames
    index = int(np.round(float(n - 1) / segments * (seg + 0.5))) + p_frames
    gop, position = index // 12, index % 12
    if p_frames and position == 0:
        gop, position = gop - 1, 11
    return gop, position


def gops_of(n):
    """num_p of an n-frame video in strict GOPs of 12."""
    return [11] * (n // 12) + ([n % 12 - 1] if n % 12 else [])
