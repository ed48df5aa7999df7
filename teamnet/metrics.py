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
    }


def save_confusion_image(confusion, classes, path):
    """Row-normalised confusion matrix as a PNG."""
    matrix = np.asarray(confusion, float)
    matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(40, max(4, 0.25 * len(classes) + 2))
    figure, axes = pyplot().subplots(figsize=(size, size))
    image = axes.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    if len(classes) <= 60:
        axes.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
        axes.set_yticks(range(len(classes)), classes, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    figure.colorbar(image, fraction=0.046)
    figure.tight_layout()
    save_png(figure, path)
