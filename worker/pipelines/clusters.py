"""Clusters: group stored CLIP embeddings (scikit-learn), name each from ≤5 representative images (BLIP-2
`/label-cluster`), enrich it (Phi-3.5 `/enrich-cluster`). A new run replaces the previous clusters."""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

from storage.models import new_id
from storage.repositories.clusters import ClusterDraft
from worker.model_client import StageFailed
from worker.pipelines.context import PermanentError, PipelineContext

REPRESENTATIVES = 5


def load_embeddings(ctx: PipelineContext, include_frames: bool) -> tuple[list[str], np.ndarray]:
    rows = ctx.clusters.embeddings(include_frames)
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    vectors = np.asarray([np.asarray(vector, dtype=np.float32) for _, vector in rows])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return [media_id for media_id, _ in rows], vectors


def assign(vectors: np.ndarray, k: int, method: str) -> np.ndarray:
    if method == "agglomerative":
        from sklearn.cluster import AgglomerativeClustering

        return AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(vectors)
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=4, random_state=0).fit_predict(vectors)


def build_clusters(ctx: PipelineContext, params: dict[str, Any]) -> dict[str, Any]:
    ctx.report(0.05, "loading embeddings")
    ids, vectors = load_embeddings(ctx, bool(params.get("include_frames", False)))
    if len(ids) < 2:
        raise PermanentError(f"clustering needs at least 2 embedded images; {len(ids)} stored")
    k = int(params.get("k") or max(2, round(math.sqrt(len(ids) / 2))))
    k = min(k, len(ids))
    ctx.report(0.1, f"grouping {len(ids)} images into {k} clusters")
    labels = assign(vectors, k, str(params.get("method", "kmeans")))
    drafts: list[ClusterDraft] = []
    for index, cluster in enumerate(sorted(set(labels.tolist()))):
        ctx.report(0.15 + 0.8 * index / k, f"naming cluster {index + 1}/{k}")
        members = [i for i, label in enumerate(labels) if label == cluster]
        drafts.append(_describe(ctx, _by_distance(ids, vectors, members)))
    run_id = new_id()
    ctx.clusters.replace_all(run_id, drafts, representatives=REPRESENTATIVES)
    reasons = sorted({reason for draft in drafts for reason in draft.degraded_reasons})
    return {"run_id": run_id, "clusters": len(drafts), "items": len(ids), "degraded_reasons": reasons}


def _by_distance(ids: list[str], vectors: np.ndarray, members: list[int]) -> list[tuple[str, float]]:
    """The members with their cosine distance to the cluster's centre, closest first."""
    centroid = vectors[members].mean(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    distances = 1.0 - vectors[members] @ centroid
    order = np.argsort(distances)
    return list(zip([ids[members[i]] for i in order], distances[order].tolist(), strict=True))


def _describe(ctx: PipelineContext, members: list[tuple[str, float]]) -> ClusterDraft:
    """Name the cluster from its representatives, then enrich it; a failed stage becomes a reason."""
    member_ids = [media_id for media_id, _ in members]
    draft = ClusterDraft(members=members, name=f"cluster of {len(members)}")
    try:
        label = ctx.models.label_cluster(_images(ctx, member_ids[:REPRESENTATIVES]), len(members))
        draft.name, draft.description, draft.tags = label.cluster_name, label.description, label.tags
        draft.category, draft.confidence = label.primary_category, label.confidence
    except StageFailed as exc:
        draft.degraded_reasons.append(exc.reason)
    try:
        enrichment = ctx.models.enrich_cluster(draft.name, draft.description or "",
                                               ctx.media.captions(member_ids[:10]))
        draft.enrichment = enrichment.model_dump(mode="json")
    except StageFailed as exc:
        draft.degraded_reasons.append(exc.reason)
    return draft


def _images(ctx: PipelineContext, media_ids: list[str]) -> list[str]:
    return [base64.b64encode(ctx.store.read(sha)).decode("ascii") for sha in ctx.media.sha256s(media_ids)]
