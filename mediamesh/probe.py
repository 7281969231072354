"""The linear probe behind `mediamesh train-head`: a per-label held-out split, logistic regression with
class weights on standardised CLIP embeddings, and the held-out metrics of any classifier's predictions.

The standardisation is folded into the weights, so the saved head is one plain linear layer over the
clip service's L2-normalised vectors: softmax(W·x + b).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.preprocessing import StandardScaler

from shared.schemas.heads import ClassMetrics, Evaluation


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # indices
    test: np.ndarray


def stratified_split(targets: np.ndarray, holdout: float, seed: int) -> Split:
    """Per label, `holdout` of its items (at least one) to the test side and at least one to train."""
    rng = np.random.default_rng(seed)
    train: list[int] = []
    test: list[int] = []
    for label in np.unique(targets):
        items = rng.permutation(np.flatnonzero(targets == label))
        held = min(max(1, round(len(items) * holdout)), len(items) - 1)
        test.extend(items[:held].tolist())
        train.extend(items[held:].tolist())
    return Split(np.array(sorted(train)), np.array(sorted(test)))


def fit_probe(embeddings: np.ndarray, targets: np.ndarray, labels: int, *, c: float, seed: int,
              ) -> tuple[np.ndarray, np.ndarray]:
    """(W (labels × dim), b): logistic regression with balanced class weights, as one linear layer."""
    scaler = StandardScaler().fit(embeddings)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
    model.fit((embeddings - scaler.mean_) / scale, targets)
    coef, intercept = model.coef_, model.intercept_
    if labels == 2:  # sklearn keeps one row for two classes: p(1) = sigmoid(z) = softmax([-z/2, z/2])[1]
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    weights = coef / scale
    return weights, intercept - weights @ scaler.mean_


def predict(weights: np.ndarray, bias: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    return np.argmax(embeddings @ weights.T + bias, axis=1)


def evaluate(labels: list[str], truth: np.ndarray, predicted: np.ndarray) -> Evaluation:
    order = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=order, zero_division=0)
    per_class = {label: ClassMetrics(precision=float(precision[i]), recall=float(recall[i]), f1=float(f1[i]),
                                     support=int(support[i])) for i, label in enumerate(labels)}
    return Evaluation(accuracy=float(np.mean(truth == predicted)), macro_f1=float(np.mean(f1)), per_class=per_class,
                      confusion=confusion_matrix(truth, predicted, labels=order).tolist())
