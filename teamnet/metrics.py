"""Accuracy as the paper reports it (top-1, top-5) plus per-class views."""
import numpy as np

from .pictures import pyplot, save_png


def accuracy_report(logits, labels, classes):
    """logits (V, K), labels (V,) -> top1, top5, mean class accuracy (fractions in [0, 1]),
    per-class accuracy, and the confusion matrix (rows: true class, columns: predicted)."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    ranked = np.argsort(-logits, axis=1)
    k = min(5, logits.shape[1])
    predicted = ranked[:, 0]
    confusion = np.zeros((len(classes), len(classes)), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    support = confusion.sum(axis=1)
    present = support > 0
    per_class = np.where(present, np.diag(confusion) / np.maximum(support, 1), np.nan)
    return {
        "videos": int(len(labels)),
        "top1": float(np.mean(predicted == labels)),
        "top5": float(np.mean((ranked[:, :k] == labels[:, None]).any(axis=1))),
        "mean_class_accuracy": float(np.nanmean(per_class[present])) if present.any() else 0.0,
        "per_class": {name: (None if np.isnan(a) else float(a)) for name, a in zip(classes, per_class)},
        "confusion": confusion.tolist(),
        "most_confused": most_confused(confusion, classes),
    }


def most_confused(confusion, classes, count=10):
    """The `count` largest mistakes, most videos first: [{"true", "predicted", "videos",
    "share"}], share being the part of the true class's videos taken for the other class."""
    confusion = np.asarray(confusion)
    support = confusion.sum(axis=1)
    mistakes = confusion * (1 - np.eye(len(confusion), dtype=confusion.dtype))
    pairs = np.argwhere(mistakes > 0)
    order = sorted(pairs.tolist(), key=lambda p: (-mistakes[p[0], p[1]],
                                                  -mistakes[p[0], p[1]] / support[p[0]]))
    return [{"true": classes[t], "predicted": classes[p], "videos": int(mistakes[t, p]),
             "share": float(mistakes[t, p] / support[t])} for t, p in order[:count]]


def save_confusion_image(confusion, classes, path):
    """The confusion matrix as a PNG, row-normalised (each true class's videos sum to 1, so
    classes with few videos show as clearly as large ones), every class named, and each
    cell's count of videos written in it where the cells are large enough to hold it."""
    counts = np.asarray(confusion)
    matrix = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(classes)
    size = min(60, max(5, (0.3 if k <= 60 else 0.12) * k + 2.5))  # 400 classes: 50 inches
    font = 7 if k <= 60 else 5
    figure, axes = pyplot().subplots(figsize=(size, size))
    image = axes.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(k), classes, rotation=90, fontsize=font)
    axes.set_yticks(range(k), classes, fontsize=font)
    if k <= 30:
        for (row, column), videos in np.ndenumerate(counts):
            if videos:
                axes.text(column, row, str(videos), ha="center", va="center",
                          fontsize=8 if k <= 12 else 6,
                          color="white" if matrix[row, column] > 0.5 else "black")
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"{counts.sum():,} videos; colour: share of the true class's videos"
                   + ("; numbers: videos" if k <= 30 else ""), fontsize=9)
    figure.colorbar(image, fraction=0.046, label="share of the row (row-normalised)")
    figure.tight_layout()
    save_png(figure, path)
