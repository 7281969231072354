"""A trained head's report, saved in its folder: `report.json`, `report.md` and `confusion.png`
(the head's and zero-shot CLIP's confusion matrices on the same held-out split)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from shared.schemas.heads import Evaluation, HeadInfo

REPORT_FILES = ("report.json", "report.md", "confusion.png")


def write_report(folder: Path, info: HeadInfo) -> None:
    (folder / "report.json").write_text(info.model_dump_json(indent=2))
    (folder / "report.md").write_text(markdown(info))
    draw_confusion(folder / "confusion.png", info)


def markdown(info: HeadInfo) -> str:
    m = info.metrics
    lines = [
        f"# Head `{info.ref}`", "",
        f"Trained {info.created_at:%Y-%m-%d %H:%M} UTC on {info.space} embeddings: "
        f"{sum(m.train_images.values())} images to train, {sum(m.test_images.values())} held out "
        f"(seed {info.training.get('seed')}, holdout {info.training.get('holdout')}).", "",
        "| | accuracy | macro F1 |", "|---|---|---|",
        f"| head (linear probe) | {m.head.accuracy:.3f} | {m.head.macro_f1:.3f} |",
        f"| zero-shot CLIP (`{m.zero_shot_template}`) | {m.zero_shot.accuracy:.3f} | {m.zero_shot.macro_f1:.3f} |",
        "", "| label | train | held out | precision | recall | F1 | zero-shot F1 |", "|---|---|---|---|---|---|---|",
    ]
    for label in info.labels:
        head, zero = m.head.per_class[label], m.zero_shot.per_class[label]
        lines.append(f"| {label} | {m.train_images[label]} | {m.test_images[label]} | {head.precision:.3f} | "
                     f"{head.recall:.3f} | {head.f1:.3f} | {zero.f1:.3f} |")
    lines += ["", "Confusion matrices (rows: true label, columns: predicted): `confusion.png`.", "",
              *_confusion_table("head", info.labels, m.head), "", *_confusion_table("zero-shot", info.labels,
                                                                                    m.zero_shot)]
    return "\n".join(lines) + "\n"


def _confusion_table(title: str, labels: list[str], evaluation: Evaluation) -> list[str]:
    rows = [f"| {title} | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    rows += [f"| **{label}** | " + " | ".join(map(str, row)) + " |"
             for label, row in zip(labels, evaluation.confusion, strict=True)]
    return rows


def draw_confusion(path: Path, info: HeadInfo) -> None:
    """Drawn on a bare Agg figure (no pyplot): no display, no global backend, nothing left open."""
    labels, size = info.labels, max(4.0, 0.6 * len(info.labels) + 2)
    figure = Figure(figsize=(2 * size, size + 0.5), layout="constrained")
    FigureCanvasAgg(figure)
    panels = (("head", info.metrics.head), ("zero-shot CLIP", info.metrics.zero_shot))
    for ax, (title, evaluation) in zip(figure.subplots(1, 2), panels, strict=True):
        counts = evaluation.confusion
        ax.imshow(counts, cmap="Blues", vmin=0)
        top = max(max(row) for row in counts) or 1
        for i, row in enumerate(counts):
            for j, n in enumerate(row):
                ax.text(j, i, str(n), ha="center", va="center", color="white" if n > top / 2 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title}\naccuracy {evaluation.accuracy:.2f}, macro F1 {evaluation.macro_f1:.2f}")
    figure.suptitle(f"{info.ref} on the held-out split")
    figure.savefig(path, dpi=100)
