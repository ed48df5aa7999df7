"""Pictures of the representation and of what the model looks at (matplotlib, headless).

Motion vectors are drawn as colours: the hue gives the direction (legend wheel: right red,
down yellow-green, left cyan, up violet) and the brightness the length, full at MV_RANGE
pixels (the range the network's input maps onto 8 bits; longer ones saturate). Residuals are
drawn as 128 + value per RGB channel: grey where the prediction was exact.
"""
import numpy as np

from preprocess.atomic import atomic_output
from preprocess.errors import TeamnetError

from .transforms import MV_RANGE

# Class names longer than this are numbered on a confusion matrix's axes and named in a key
# beside it (Something-Something's run to 100 characters: on the axes they leave the matrix
# a corner of the picture)
LONG_NAME = 24
MAX_COLUMNS = 8  # segments shown in a CAM grid (evenly spaced when there are more)
ROW_NAMES = {"iframe": "I-frame", "mv": "motion vectors", "residual": "residual"}


def pyplot():
    """matplotlib's pyplot, headless (the Agg backend): training nodes have no display."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    return plt


def mv_colours(mv):
    """(H, W, 2) motion vectors in pixels -> (H, W, 3) RGB floats in [0, 1]."""
    from matplotlib.colors import hsv_to_rgb
    x, y = mv[..., 0].astype(np.float32), mv[..., 1].astype(np.float32)
    hue = (np.arctan2(y, x) / (2 * np.pi)) % 1.0
    value = np.minimum(np.hypot(x, y) / MV_RANGE, 1.0)
    return hsv_to_rgb(np.stack([hue, np.ones_like(hue), value], axis=-1))


def residual_picture(residual):
    """(H, W, 3) signed residual -> (H, W, 3) uint8, grey (128) where it is zero."""
    return np.clip(residual.astype(np.int16) + 128, 0, 255).astype(np.uint8)


def picture(modality, frame):
    """What a frame of a modality looks like on screen."""
    if modality == "mv":
        return mv_colours(frame)
    return residual_picture(frame) if modality == "residual" else frame


def _wheel(figure, rect):
    """The MV colour legend: a disc whose colour at (x, y) is a vector of that direction."""
    axis = figure.add_axes(rect)
    y, x = np.mgrid[-1:1:64j, -1:1:64j]
    colours = mv_colours(np.stack([x, y], -1) * MV_RANGE)
    colours[np.hypot(x, y) > 1] = 1.0
    axis.imshow(colours, extent=(-1, 1, 1, -1))
    axis.set_title(f"MV: {MV_RANGE:g} px", fontsize=7)
    axis.axis("off")


class PictureError(TeamnetError):
    """A picture that could not be written. Pictures come after the numbers they show:
    callers report this as a warning and keep the numbers."""


def save_png(figure, path):
    """Write a figure as PNG; the file appears only once whole. PictureError names the path
    where it cannot be written (a read-only folder, a name too long, a full disk)."""
    try:
        with atomic_output(path) as temporary:
            figure.savefig(temporary, format="png", dpi=100)
    except OSError as error:
        raise PictureError(f"could not write {path}: {error.strerror or error}") from None
    finally:
        pyplot().close(figure)


def cam_grid(clip, maps, title, path, gops=None):
    """One PNG: a row per modality (clip {modality: (T, S, S, C)} as the network saw it),
    a column per segment (up to MAX_COLUMNS, evenly spaced; gops: the GOP of each segment,
    shown once where a short video's segments share one), each overlaid with its branch's
    class activation map (maps {modality: (T, h, w)}), whose scale each row's colour bar
    gives (in units of the class's logit). Returns the segments shown (0-based)."""
    plt = pyplot()
    modalities = list(maps)
    segments = len(next(iter(clip.values())))
    gops = np.arange(segments) if gops is None else np.asarray(gops)
    distinct = np.unique(gops, return_index=True)[1]  # each GOP's first segment, in order
    columns = distinct[np.unique(np.linspace(0, len(distinct) - 1,
                                             min(len(distinct), MAX_COLUMNS)).round().astype(int))]
    legend = 0.75 if "mv" in modalities else 0.0  # inches below the grid for the MV wheel
    height = 1.7 * len(modalities) + 0.6 + legend
    figure, axes = plt.subplots(len(modalities), len(columns), squeeze=False,
                                figsize=(1.6 * len(columns) + 1.6, height))
    figure.set_layout_engine("constrained", rect=(0, legend / height, 1, 1 - legend / height))
    for row, modality in enumerate(modalities):
        low, high = float(maps[modality].min()), float(maps[modality].max())
        for column, t in enumerate(columns):
            axis = axes[row, column]
            side = clip[modality].shape[1]
            axis.imshow(picture(modality, clip[modality][t]), extent=(0, side, side, 0))
            overlay = axis.imshow(maps[modality][t], cmap="jet", alpha=0.3, vmin=low,
                                  vmax=max(high, low + 1e-6), extent=(0, side, side, 0),
                                  interpolation="bilinear")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(f"segment {t + 1} (GOP {gops[t]})", fontsize=7)
        axes[row, 0].set_ylabel(ROW_NAMES[modality], fontsize=8)
        bar = figure.colorbar(overlay, ax=axes[row, :], fraction=0.04, pad=0.01)
        bar.solids.set(alpha=1)  # the scale, not the overlay's see-through look
        bar.ax.tick_params(labelsize=6)
        bar.set_label("CAM (logit)", fontsize=6)
    figure.suptitle(title, fontsize=9)
    if legend:
        _wheel(figure, (0.01, 0.01, 0.6 / figure.get_figwidth(), 0.6 / height))
    save_png(figure, path)
    return columns.tolist()


def gop_picture(video, gop, title, path, columns=6):
    """One PNG of GOP `gop` of a stored video (store.read_video): the I-frame first, then for
    each stored P-frame its accumulated MVs above its residual, `columns` pictures a row,
    value ranges in the captions."""
    plt = pyplot()
    count = int(video["num_p"][gop])
    bands = -(-(1 + count) // columns)
    height, width = video["iframes"].shape[1:3]
    row_height = 1.9 * height / width + 0.35  # a picture 1.9 inches wide, and its caption
    figure, axes = plt.subplots(2 * bands, columns, squeeze=False,
                                figsize=(1.9 * columns + 0.8, 2 * bands * row_height + 0.4))
    for axis in axes.flat:
        axis.axis("off")
    cells = [(2 * (n // columns), n % columns) for n in range(1 + count)]
    row, column = cells[0]
    axes[row, column].imshow(video["iframes"][gop])
    axes[row, column].set_title("I-frame", fontsize=8)
    for j, (row, column) in enumerate(cells[1:]):
        mv, residual = video["mvs"][gop, j], video["residuals"][gop, j]
        p_frame = 1 + j * video["p_stride"]
        axes[row, column].imshow(mv_colours(mv))
        axes[row, column].set_title(f"P{p_frame} MV: x {mv[..., 0].min()}..{mv[..., 0].max()}"
                                    f"\ny {mv[..., 1].min()}..{mv[..., 1].max()} px", fontsize=7)
        axes[row + 1, column].imshow(residual_picture(residual))
        axes[row + 1, column].set_title(f"P{p_frame} residual: {residual.min()}..{residual.max()}",
                                        fontsize=7)
    figure.suptitle(title + ("" if count else " (no P-frame in this GOP)"), fontsize=9)
    figure.tight_layout(rect=(0, 0, 1 - 0.7 / figure.get_figwidth(), 1))
    _wheel(figure, (1 - 0.65 / figure.get_figwidth(), 0.05, 0.6 / figure.get_figwidth(), 0.2))
    save_png(figure, path)


def learning_curves(history, path, best=None):
    """One PNG of a run's epochs (metrics.jsonl's lines): training and validation loss,
    training and validation top-1, and the learning rate (log scale), one point an epoch;
    best: the epoch best.pt holds, marked. Returns {metric: [(epoch, value)]}, as drawn."""
    plt = pyplot()
    epochs = [m["epoch"] for m in history]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    drawn = {}
    panels = ((axes[0], "loss", (("train_loss", "training"), ("val_loss", "validation"))),
              (axes[1], "top-1", (("train_top1", "training (augmented)"),
                                  ("val_top1", "validation"))),
              (axes[2], "learning rate", (("lr", None),)))
    for axis, title, curves in panels:
        for key, label in curves:
            points = [(m["epoch"], m[key]) for m in history if key in m]
            if points:
                axis.plot(*zip(*points), marker="o", markersize=3, label=label)
                drawn[key] = points
        axis.set(title=title, xlabel="epoch")
        if any(label for _, label in curves) and axis.lines:
            axis.legend(fontsize=8)
    if best is not None:
        axes[1].axvline(best, linestyle=":", color="grey")
        axes[1].annotate("best.pt", (best, 0.02), fontsize=7, color="grey", ha="center")
    axes[1].set_ylim(0, 1.02)
    axes[2].set_yscale("log")
    for axis in axes:
        axis.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        axis.xaxis.get_major_locator().set_params(integer=True)
    figure.tight_layout()
    save_png(figure, path)
    return drawn


def timeline_figure(windows, classes, title):
    """A video's windows (predict --window) as a strip along time: in each window its top k
    classes (as many as its result holds) as stacked bands, the most probable at the bottom,
    each as tall as its probability, one colour a class (named in the legend); failed
    windows hatched."""
    plt = pyplot()
    end = max(w["end"] for w in windows)
    shown = sorted({t["class"] for w in windows for t in w.get("top", ())}, key=classes.index)
    colours = {name: plt.get_cmap("tab20")(k % 20) for k, name in enumerate(shown)}
    figure, axis = plt.subplots(figsize=(min(40, 4 + 0.25 * len(windows)), 2.2))
    for window in windows:
        start, stop = window["start"], window["end"]
        if "error" in window:
            axis.bar(start, 1, width=stop - start, align="edge", color="white",
                     edgecolor="grey", hatch="//")
            continue
        bottom = 0.0
        for top in window["top"]:
            axis.bar(start, top["probability"], bottom=bottom, width=stop - start,
                     align="edge", color=colours[top["class"]], edgecolor="white")
            bottom += top["probability"]
    axis.set(xlim=(0, end), ylim=(0, 1), xlabel="seconds", ylabel="probability")
    axis.set_title(title, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[name]) for name in shown]
    axis.legend(handles, shown, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.tight_layout()
    return figure


def timeline_strip(windows, classes, title, path):
    """A video's timeline (timeline_figure) as a PNG."""
    save_png(timeline_figure(windows, classes, title), path)


def confusion_figure(confusion, classes):
    """The confusion matrix's figure, row-normalised (each true class's videos sum to 1, so
    classes with few videos show as clearly as large ones), every class named, and each
    cell's count of videos written in it where the cells are large enough to hold it.
    Long names are numbered on the axes and named in a key beside the matrix."""
    import textwrap
    counts = np.asarray(confusion)
    matrix = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(classes)
    size = min(60, max(5, (0.3 if k <= 60 else 0.12) * k + 2.5))  # 400 classes: 50 inches
    font = 7 if k <= 60 else 5
    numbered = max(map(len, classes), default=0) > LONG_NAME
    key = [f"{n:>{len(str(k))}}  {name}" for n, name in enumerate(classes, 1)]
    key_width = max(map(len, key)) * font * 0.62 / 72 + 0.4 if numbered else 0  # inches
    figure = pyplot().figure(figsize=(size + key_width, size), layout="constrained")
    if numbered:
        grid = figure.add_gridspec(1, 2, width_ratios=(size, key_width))
        axes, legend = figure.add_subplot(grid[0]), figure.add_subplot(grid[1])
        legend.axis("off")
        legend.text(0, 1, "\n".join(key), va="top", ha="left", family="monospace",
                    fontsize=font, transform=legend.transAxes)
    else:
        axes = figure.add_subplot()
    labels = [str(n) for n in range(1, k + 1)] if numbered else classes
    image = axes.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(k), labels, rotation=90, fontsize=font)
    axes.set_yticks(range(k), labels, fontsize=font)
    if k <= 30:
        for (row, column), videos in np.ndenumerate(counts):
            if videos:
                axes.text(column, row, str(videos), ha="center", va="center",
                          fontsize=8 if k <= 12 else 6,
                          color="white" if matrix[row, column] > 0.5 else "black")
    axes.set_xlabel("predicted class" + (" (numbered as in the key)" if numbered else ""))
    axes.set_ylabel("true class")
    title = (f"{counts.sum():,} videos; colour: share of the true class's videos"
             + ("; numbers: videos" if k <= 30 else ""))
    axes.set_title(textwrap.fill(title, int(size * 72 / (9 * 0.6))), fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the row")
    return figure


def save_confusion_image(confusion, classes, path):
    """The confusion matrix (confusion_figure) as a PNG."""
    save_png(confusion_figure(confusion, classes), path)
