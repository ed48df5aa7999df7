"""Accuracy as the paper reports it (top-1, top-5) plus per-class views."""
import numpy as np


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
