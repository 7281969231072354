// Item: the picture, video (with its sampled frames) or audio; labels, caption, objects, transcript with
// clickable times; the cascade trace stage by stage; the item's jobs and "reprocess"; "delete", after a confirm.
import { del, get, post, query } from "../api.js";
import { bytes, clock, h, notice, sourced, thumbnail, when } from "../dom.js";

const POLL_MS = 700;
const section = (title, ...content) => h("section", { class: "panel" }, h("h2", {}, title), ...content);
const scores = (list) => h("ul", { class: "scores" }, (list || []).map((s) => h("li", {},
  h("span", {}, s.label), h("span", { class: "meter" }, h("i", { style: `width:${Math.round(s.score * 100)}%` })),
  h("span", { class: "num" }, s.score.toFixed(3)))));

function player(media) {
  const file = `/v1/media/${encodeURIComponent(media.id)}/file`;
  if (media.kind === "image") return sourced("img", file, { class: "original", alt: media.original_name || "image" });
  if (media.kind === "video") return sourced("video", file, { controls: true, class: "original" });
  if (media.kind === "audio") return sourced("audio", file, { controls: true });
  return h("pre", { class: "json" }, JSON.stringify(media.json_document?.document ?? null, null, 2).slice(0, 20000));
}

const seek = (el, t) => () => { if (el.tagName !== "IMG") { el.currentTime = t; el.play?.().catch(() => {}); } };

function frames(media, el) {
  if (!media.frames.length) return null;
  return section("Frames", h("div", { class: "frames" }, media.frames.map((f) => h("button", {
    type: "button", class: "frame", title: `${clock(f.t)}`, onclick: seek(el, f.t) },
    thumbnail(f.media_id, "frame", 128), h("span", {}, clock(f.t))))));
}

function transcript(media, el) {
  const t = media.transcript;
  if (!t) return null;
  return section(`Transcript (${t.language || "?"})`, h("ol", { class: "transcript" }, (t.segments || []).map((s) =>
    h("li", {}, h("button", { type: "button", class: "time", onclick: seek(el, s.start) }, clock(s.start)), " ", s.text))));
}

function analysis(media) {
  const c = media.classification, a = media.analysis;
  if (!c && !a) return null;
  return section("Labels",
    c && h("p", { class: "main-label" }, h("strong", { id: "label" }, c.label), ` ${(c.confidence * 100).toFixed(1)}%`),
    c && scores(c.top_k),
    a?.caption && h("p", { class: "caption" }, a.caption),
    a?.scene && h("p", {}, `Scene: ${a.scene}`),
    a?.objects?.length > 0 && h("p", {}, "Objects: ", a.objects.map((o) => o.name).join(", ")),
    media.objects?.length > 0 && h("p", { id: "detected" }, "Detected: ", media.objects.map((o) =>
      `${o.label} ${(o.score * 100).toFixed(0)}%${o.classification?.label ? ` (${o.classification.label})` : ""}`)
      .join(", ")),
    a?.colors?.length > 0 && h("p", { class: "colors" }, a.colors.map((c) => h("i", { title: c, style: `background:${c}` }))));
}

function trace(media) {
  const t = media.classification?.trace;
  if (!t?.stages?.length) return null;
  const stage = (s, i) => h("li", { class: `stage ${s.status}`, dataset: { stage: s.stage } },
    h("h3", {}, `${i + 1}. ${s.stage}`, h("small", {}, ` ${s.service} · ${s.ms.toFixed(0)} ms`)),
    s.status === "failed" ? notice(s.error || "failed") : scores(s.top_k),
    s.answer && h("p", {}, `Answer: ${s.answer}`),
    s.entropy != null && h("p", { class: "muted" }, `entropy ${s.entropy.toFixed(3)}`),
    h("p", { class: `decision ${s.decision}` }, `${s.decision}${s.reason ? `: ${s.reason}` : ""}`));
  return section(`Cascade (variant ${t.variant}, ${t.total_ms.toFixed(0)} ms${t.degraded ? ", degraded" : ""})`,
    h("ol", { class: "trace", id: "trace" }, t.stages.map(stage)));
}

function jobs(media, reprocess) {
  return section("Jobs", h("ul", { class: "jobs" }, media.jobs.map((j) => h("li", { dataset: { state: j.state } },
    `${when(j.created_at)} · ${j.state}${j.stage ? ` · ${j.stage}` : ""} · attempt ${j.attempts}/${j.max_attempts}`,
    j.error && h("span", { class: "error-text" }, ` ${j.error}`)))),
  h("p", {}, reprocess, " ", h("a", { href: `#/jobs` }, "All jobs")));
}

export function render(root, { arg }) {
  let stopped = false;
  const status = h("div");

  async function reprocess(button) {
    button.disabled = true;
    try {
      const { job_id: jobId } = await post(`/v1/media/${encodeURIComponent(arg)}/reprocess`);
      for (let job; !stopped && !["done", "failed"].includes((job = await get(`/v1/jobs/${jobId}`)).state);) {
        button.textContent = `Reprocessing: ${job.state}${job.stage ? ` · ${job.stage}` : ""}`;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
      if (!stopped) show();
    } catch (error) {
      status.replaceChildren(notice(error.message));
      button.disabled = false;
    }
  }

  async function remove(media, button) {
    const name = media.original_name || media.id;
    if (!window.confirm(`Delete ${name}? Its labels, vectors, frames and stored file go too.`)) return;
    button.disabled = true;
    try {
      await del(`/v1/media/${encodeURIComponent(media.id)}`);
      stopped = true;
      location.hash = `#/search?${query({ deleted: name })}`;
    } catch (error) {
      status.replaceChildren(notice(error.message));
      button.disabled = false;
    }
  }

  async function show() {
    try {
      const media = await get(`/v1/media/${encodeURIComponent(arg)}`);
      const el = player(media);
      const again = h("button", { type: "button", id: "reprocess", onclick: (e) => reprocess(e.currentTarget) }, "Reprocess");
      root.replaceChildren(...[
        h("div", { class: "page-head" }, h("h1", {}, media.original_name || media.id),
          h("span", { class: `badge ${media.status}`, id: "status" }, media.status),
          media.kind === "image" && h("a", { href: `#/search?${query({ similar: media.id })}` }, "More like this"),
          h("button", { type: "button", id: "delete", class: "danger", onclick: (e) => remove(media, e.currentTarget) },
            "Delete")),
        status,
        h("p", { class: "muted" }, `${media.kind} · ${media.mime} · ${bytes(media.size)} · ${when(media.created_at)}`),
        media.degraded_reasons.length ? notice(`Degraded: ${media.degraded_reasons.join("; ")}`, "warning") : null,
        h("div", { class: "item" }, h("div", { class: "media" }, el, frames(media, el)),
          h("div", { class: "facts" }, analysis(media), transcript(media, el))),
        trace(media), jobs(media, again)].filter(Boolean));
    } catch (error) {
      root.replaceChildren(notice(error.message));
    }
  }

  show();
  return () => { stopped = true; };
}
