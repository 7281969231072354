"""`mediamesh train-head FOLDER`: a CLIP head for your own labels.

FOLDER holds one sub-folder of images per label (stored media can be added or used instead:
`--media-label ID=LABEL`, `--media-csv`). Every image is embedded by the clip service
(through the gateway); a per-label held-out split is kept aside; a linear probe (logistic
regression, balanced class weights) is fitted on the rest and compared on the held-out images
with zero-shot CLIP ("a photo of a {label}."). The head is saved as a new version under
MEDIAMESH_HOME/heads/<name>/ with its report; the clip service serves it at once
(`POST /v1/classify` with `head`), and a cascade stage `kind: clip_head` can use it.
"""

from __future__ import annotations

import base64
import csv
import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mediamesh.cli.calibrate import labelled_images
from mediamesh.settings import CommandSettings
from shared.cascade.scoring import readable
from shared.client import GatewayClient, GatewayError
from shared.heads import NAME, HeadStore, check_name
from shared.http.errors import BadInput, ServiceError
from shared.imaging import decode_image
from shared.schemas.clip import EmbedResponse, ImageEmbedRequest, ZeroShotRequest, ZeroShotResponse
from shared.schemas.heads import EmbeddingSpace, HeadInfo, HeadMetrics

console = Console()
BATCH = 16  # images per embedding call
ZERO_SHOT_TEMPLATE = "a photo of a {}."
MAX_PIXELS = 40_000_000  # the clip service's default limit (CLIP_MAX_IMAGE_PIXELS)
MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IMAGE_INDEX = re.compile(r"images\[(\d+)\]")  # how the clip service names the images of one call


class TrainingRefused(ValueError):
    """The folder or the embeddings cannot make a head; the message says what is wrong."""


def check_folder(images: list[tuple[str, Path]], min_images: int) -> list[str]:
    """The labels, or why these images cannot train a head: too few labels, too few images of a label,
    images that do not decode."""
    counts = Counter(label for label, _ in images)
    if len(counts) < 2:
        raise TrainingRefused(f"a head needs at least 2 labels (one sub-folder each); found {sorted(counts)}")
    few = {label: n for label, n in sorted(counts.items()) if n < min_images}
    if few:
        raise TrainingRefused(f"label(s) with fewer than {min_images} images (--min-images): {few}; add images")
    unreadable = []
    for label, path in images:
        try:
            decode_image(path.read_bytes(), max_pixels=MAX_PIXELS, name=f"{label}/{path.name}")
        except (ServiceError, OSError) as exc:
            unreadable.append(getattr(exc, "detail", None) or f"{label}/{path.name}: {exc}")
    if unreadable:
        more = f"\n  … and {len(unreadable) - 10} more" if len(unreadable) > 10 else ""
        listed = "\n  ".join(unreadable[:10]) + more
        raise TrainingRefused(f"{len(unreadable)} image(s) cannot be read; fix or remove them:\n  {listed}")
    return sorted(counts)


def one_space(spaces: list[tuple[EmbeddingSpace, str]]) -> EmbeddingSpace:
    """The one embedding space of every answer; two spaces mean the clip model changed mid-run."""
    first = spaces[0][0]
    others = [(space, what) for space, what in spaces if not space.same(first)]
    if others:
        seen = "; ".join(f"{space} for {what}" for space, what in [spaces[0], others[0]])
        raise TrainingRefused(f"the images were embedded in more than one embedding space ({seen}): the clip "
                              "service's model changed during training; run train-head again")
    return spaces[0][0]


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def name_refused_image(exc: GatewayError, chunk: list[Path]) -> GatewayError | TrainingRefused:
    """A refused image (4xx) as the file it is: the service names it `images[i]` of the call."""
    if not 400 <= exc.status_code < 500:
        return exc

    def file(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return f"{chunk[index].parent.name}/{chunk[index].name}" if index < len(chunk) else match.group(0)

    return TrainingRefused(f"the clip service refused an image: {IMAGE_INDEX.sub(file, exc.detail)}")


def embed(client: GatewayClient, service: str, paths: list[Path]) -> tuple[np.ndarray, EmbeddingSpace]:
    vectors: list[list[float]] = []
    spaces: list[tuple[EmbeddingSpace, str]] = []
    with _progress() as progress:
        task = progress.add_task("embedding", total=len(paths))
        for start in range(0, len(paths), BATCH):
            chunk = paths[start:start + BATCH]
            try:
                answer = client.call(service, "/v1/embed/image",
                                     ImageEmbedRequest(images=[_b64(p) for p in chunk]), EmbedResponse)
            except GatewayError as exc:
                raise name_refused_image(exc, chunk) from exc
            vectors.extend(answer.embeddings)
            space = EmbeddingSpace(model=answer.model, dim=answer.dim, weights_sha256=answer.weights_sha256)
            spaces.append((space, f"images {start + 1}-{start + len(chunk)}"))
            progress.advance(task, len(chunk))
    return np.array(vectors, dtype=np.float64), one_space(spaces)


def zero_shot(client: GatewayClient, service: str, paths: list[Path],
              labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Zero-shot CLIP's predicted label index per image, and the model of each answer."""
    prompts = [readable(label) for label in labels]
    predicted: list[int] = []
    models: list[str] = []
    with _progress() as progress:
        task = progress.add_task("zero-shot baseline", total=len(paths))
        for start in range(0, len(paths), BATCH):
            chunk = paths[start:start + BATCH]
            answer = client.call(service, "/v1/zero-shot", ZeroShotRequest(
                images=[_b64(p) for p in chunk], labels=prompts, template=ZERO_SHOT_TEMPLATE), ZeroShotResponse)
            predicted.extend(prompts.index(result.scores[0].label) for result in answer.results)
            models.append(answer.model)
            progress.advance(task, len(chunk))
    return np.array(predicted), models


def default_name(folder: Path | None) -> str:
    if folder is None:
        raise TrainingRefused("give the head a --name (there is no folder to name it after)")
    name = re.sub(r"[^a-z0-9_.-]+", "-", folder.resolve().name.lower()).strip("-._")
    if not NAME.fullmatch(name):
        raise TrainingRefused(f"cannot make a head name from the folder name {folder.name!r}; give --name")
    return name


def media_pairs(media_label: list[str], media_csv: Path | None) -> list[tuple[str, str]]:
    """(media id, label) from `--media-label ID=LABEL` and the `media_id,label` rows of `--media-csv`."""
    rows = [(item, *item.partition("=")[::2]) for item in media_label]
    if media_csv is not None:
        with media_csv.open(newline="") as handle:
            lines = [row for row in csv.reader(handle) if row and not row[0].lstrip().startswith("#")]
        if lines and [cell.strip().lower() for cell in lines[0]] == ["media_id", "label"]:
            lines = lines[1:]
        rows += [(",".join(row), row[0], row[1] if len(row) == 2 else "") for row in lines]
    pairs: dict[str, str] = {}
    for given, media_id, label in rows:
        media_id, label = media_id.strip(), label.strip()
        if not MEDIA_ID.fullmatch(media_id) or not label or "/" in label or label.startswith("."):
            raise TrainingRefused(f"{given!r} is not `MEDIA_ID=LABEL` (--media-label) or `media_id,label` "
                                  "(--media-csv) with a stored item's id and a label without '/'")
        if pairs.setdefault(media_id, label) != label:
            raise TrainingRefused(f"media {media_id} is labelled both {pairs[media_id]!r} and {label!r}")
    return list(pairs.items())


def fetch_media(client: GatewayClient, pairs: list[tuple[str, str]], scratch: Path) -> list[tuple[str, Path]]:
    """Each stored item's original bytes as scratch/<label>/<id>, as if it were a file of the folder."""
    found = []
    with _progress() as progress:
        task = progress.add_task("fetching stored media", total=len(pairs))
        for media_id, label in pairs:
            try:
                data = client.media_file(media_id)
            except GatewayError as exc:
                if exc.status_code == 404:
                    raise TrainingRefused(f"media {media_id} (label {label!r}): {exc.detail}") from exc
                raise
            path = scratch / label / media_id
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            found.append((label, path))
            progress.advance(task)
    return found


@dataclass(frozen=True)
class Training:
    min_images: int
    holdout: float
    seed: int
    c: float


def train_head(
    folder: Annotated[Path | None, typer.Argument(
        help="One sub-folder of images per label (the sub-folder's name).")] = None,
    name: Annotated[str | None, typer.Option(help="The head's name; default the folder's name.")] = None,
    media_label: Annotated[list[str] | None, typer.Option(
        help="ID=LABEL: a stored media item as an image of LABEL (repeatable; with or without FOLDER).")] = None,
    media_csv: Annotated[Path | None, typer.Option(help="A CSV of `media_id,label` rows, like --media-label.")] = None,
    min_images: Annotated[int, typer.Option(min=2, help="Fewest images a label may have.")] = 5,
    holdout: Annotated[float, typer.Option(min=0.05, max=0.5, help="Share of each label's images held out.")] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split and of the solver.")] = 0,
    c: Annotated[float, typer.Option("--c", min=1e-6, help="Inverse regularisation strength of the probe.")] = 1.0,
    service: Annotated[str, typer.Option(help="The clip service (a GATEWAY_SERVICES name) that embeds.")] = "clip",
    heads_dir: Annotated[Path | None, typer.Option(
        help="Where the clip service reads heads (its CLIP_HEADS_DIR); default MEDIAMESH_HOME/heads.")] = None,
    url: Annotated[str | None, typer.Option(help="Gateway URL; default GATEWAY_URL or :8000.")] = None,
) -> None:
    """Train a CLIP head (a linear probe) on labelled images; report it against zero-shot CLIP; save it."""
    try:
        from mediamesh.head_report import write_report
    except ImportError as exc:
        raise typer.BadParameter(f"train-head needs the heads extra: pip install 'mediamesh[heads]' ({exc})") from exc
    if folder is None and not media_label and media_csv is None:
        raise typer.BadParameter("give a FOLDER of labelled sub-folders, or --media-label / --media-csv")
    try:
        name = check_name(name or default_name(folder))
        pairs = media_pairs(media_label or [], media_csv)
    except (TrainingRefused, BadInput, OSError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    images = labelled_images(folder) if folder is not None else []
    training = Training(min_images, holdout, seed, c)
    settings = CommandSettings()
    store = HeadStore((heads_dir or settings.home.heads_dir).expanduser())
    with settings.gateway_client(url) as client, tempfile.TemporaryDirectory(prefix="mediamesh-head-") as scratch:
        try:
            images += fetch_media(client, pairs, Path(scratch))
            labels = check_folder(images, min_images)
            info, weights, bias = fit_head(client, service, name, images, labels, training)
        except (GatewayError, TrainingRefused) as exc:
            console.print(f"[red]{exc}[/]; nothing was saved")
            raise typer.Exit(2) from exc
    saved = store.write(info, weights, bias, extras=write_report)
    show(saved, store.root / saved.name / str(saved.version))


def fit_head(client: GatewayClient, service: str, name: str, images: list[tuple[str, Path]], labels: list[str],
             training: Training) -> tuple[HeadInfo, np.ndarray, np.ndarray]:
    """Embed, hold out, fit, and measure the head and zero-shot CLIP on the held-out images."""
    from mediamesh.probe import evaluate, fit_probe, predict, stratified_split

    paths = [path for _, path in images]
    targets = np.array([labels.index(label) for label, _ in images])
    split = stratified_split(targets, training.holdout, training.seed)
    embeddings, space = embed(client, service, paths)
    zero_shot_predicted, zero_shot_models = zero_shot(client, service, [paths[i] for i in split.test], labels)
    space = one_space([(space, "the images"), *((EmbeddingSpace(model=model, dim=space.dim),
                                                "the zero-shot baseline") for model in zero_shot_models)])
    with _progress() as progress:
        task = progress.add_task("training", total=2)
        weights, bias = fit_probe(embeddings[split.train], targets[split.train], len(labels), c=training.c,
                                  seed=training.seed)
        progress.advance(task)
        truth = targets[split.test]
        metrics = HeadMetrics(
            head=evaluate(labels, truth, predict(weights, bias, embeddings[split.test])),
            zero_shot=evaluate(labels, truth, zero_shot_predicted), zero_shot_template=ZERO_SHOT_TEMPLATE,
            train_images=dict(Counter(labels[i] for i in targets[split.train])),
            test_images=dict(Counter(labels[i] for i in truth)))
        progress.advance(task)
    info = HeadInfo(name=name, version=1, labels=labels, space=space, created_at=datetime.now(UTC), metrics=metrics,
                    training={**asdict(training), "class_weight": "balanced"})
    return info, weights, bias


def show(info: HeadInfo, folder: Path) -> None:
    m = info.metrics
    table = Table("label", "held out", "precision", "recall", "F1", "zero-shot F1", title=f"head {info.ref}")
    for label in info.labels:
        head = m.head.per_class[label]
        table.add_row(label, str(m.test_images[label]), f"{head.precision:.3f}", f"{head.recall:.3f}",
                      f"{head.f1:.3f}", f"{m.zero_shot.per_class[label].f1:.3f}")
    console.print(table)
    better = "green" if m.head.macro_f1 > m.zero_shot.macro_f1 else "yellow"
    console.print(f"[{better}]head: accuracy {m.head.accuracy:.3f}, macro F1 {m.head.macro_f1:.3f}[/]; zero-shot "
                  f"CLIP: accuracy {m.zero_shot.accuracy:.3f}, macro F1 {m.zero_shot.macro_f1:.3f} "
                  f"(same {sum(m.test_images.values())} held-out images)")
    console.print(f"saved {info.ref} ({info.space}) to {folder}: weights.npz, head.json, report.json, report.md, "
                  "confusion.png")
    console.print(f"use it: POST /v1/services/clip/v1/classify {{\"images\": [...], \"head\": \"{info.ref}\"}}, "
                  f"or a cascade stage {{\"kind\": \"clip_head\", \"service\": \"clip\", \"head\": \"{info.name}\"}}")
