"""An independent, literal computation of docs/REPRESENTATION.md sections 2-4, for the tests.

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
