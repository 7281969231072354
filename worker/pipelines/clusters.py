"""Clusters: group stored CLIP embeddings (scikit-learn), name each from ≤5 representative images (BLIP-2
`/label-cluster`), enrich it (Phi-3.5 `/enrich-cluster`). A new run replaces the previous clusters."""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from storage.models import Cluster, ClusterMember, ImageAnalysis, ImageEmbedding, Media, new_id
from worker.model_client import StageFailed
from worker.pipelines.context import PermanentError, PipelineContext

REPRESENTATIVES = 5


def load_embeddings(ctx: PipelineContext, include_frames: bool) -> tuple[list[str], np.ndarray]:
    query = select(ImageEmbedding.media_id, ImageEmbedding.embedding).join(Media, Media.id == ImageEmbedding.media_id)
    if not include_frames:
        query = query.where(Media.parent_id.is_(None))
    with ctx.db.session() as session:
        rows = session.execute(query.order_by(ImageEmbedding.media_id)).all()
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    vectors = np.asarray([np.asarray(r.embedding, dtype=np.float32) for r in rows])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return [r.media_id for r in rows], vectors


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
    run_id, reasons, named = new_id(), list[str](), list[dict[str, Any]]()
    for index, cluster in enumerate(sorted(set(labels.tolist()))):
        ctx.report(0.15 + 0.8 * index / k, f"naming cluster {index + 1}/{k}")
        members = [i for i, label in enumerate(labels) if label == cluster]
        named.append(_describe(ctx, ids, vectors, members, reasons))
    with ctx.db.session() as session:
        session.execute(delete(Cluster))
        for info in named:
            _store_cluster(session, run_id, info)
    return {"run_id": run_id, "clusters": len(named), "items": len(ids), "degraded_reasons": sorted(set(reasons))}


def _describe(ctx: PipelineContext, ids: list[str], vectors: np.ndarray, members: list[int],
              reasons: list[str]) -> dict[str, Any]:
    centroid = vectors[members].mean(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    distances = 1.0 - vectors[members] @ centroid
    order = np.argsort(distances)
    member_ids = [ids[members[i]] for i in order]
    info: dict[str, Any] = {"members": list(zip(member_ids, distances[order].tolist(), strict=True)),
                            "name": f"cluster of {len(members)}", "description": None, "tags": [],
                            "category": None, "confidence": None, "enrichment": None, "reasons": []}
    reps = member_ids[:REPRESENTATIVES]
    try:
        label = ctx.models.call("blip2", "label-cluster", {"images": _images(ctx, reps), "cluster_size": len(members)})
        info.update(name=label["cluster_name"], description=label.get("description"), tags=label.get("tags", []),
                    category=label.get("primary_category"), confidence=label.get("confidence"))
    except StageFailed as exc:
        info["reasons"].append(exc.reason)
    try:
        info["enrichment"] = ctx.models.call("llm", "enrich-cluster", {
            "cluster_name": info["name"], "description": info["description"] or "",
            "sample_captions": _captions(ctx, member_ids[:10])})
    except StageFailed as exc:
        info["reasons"].append(exc.reason)
    reasons.extend(info["reasons"])
    return info


def _images(ctx: PipelineContext, media_ids: list[str]) -> list[str]:
    with ctx.db.session() as session:
        shas = [session.get(Media, media_id).sha256 for media_id in media_ids]  # type: ignore[union-attr]
    return [base64.b64encode(ctx.store.read(sha)).decode("ascii") for sha in shas]


def _captions(ctx: PipelineContext, media_ids: list[str]) -> list[str]:
    with ctx.db.session() as session:
        rows = session.scalars(select(ImageAnalysis.caption).where(ImageAnalysis.media_id.in_(media_ids)))
        return [c for c in rows if c]


def _store_cluster(session: Any, run_id: str, info: dict[str, Any]) -> None:
    cluster = Cluster(run_id=run_id, name=info["name"], description=info["description"], tags=info["tags"],
                      category=info["category"], confidence=info["confidence"], enrichment=info["enrichment"],
                      size=len(info["members"]), degraded_reasons=info["reasons"])
    session.add(cluster)
    session.flush()
    session.add_all(ClusterMember(cluster_id=cluster.id, media_id=media_id, distance=distance,
                                  representative=rank < REPRESENTATIVES)
                    for rank, (media_id, distance) in enumerate(info["members"]))
