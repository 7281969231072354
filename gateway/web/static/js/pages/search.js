// Search: words and filters (kept in the URL; the photo filters read EXIF: camera, capture date, GPS), a grid
// of thumbnails that grows as you scroll, "more like this" on any picture, and search by dropping an image.
import { get, post, query } from "../api.js";
import { h, notice, thumbnail } from "../dom.js";

const PAGE = 24;
const PICTURES = new Set(["image", "video"]);

function card(hit) {
  const id = hit.media_id ?? hit.id;
  const open = `#/item/${encodeURIComponent(hit.parent_id || id)}`;
  const score = hit.match && hit.match !== "filter" ? `${hit.match} ${hit.score.toFixed(3)}` : null;
  const similar = PICTURES.has(hit.kind) || hit.parent_id
    ? h("a", { class: "similar", href: `#/search?${query({ similar: id })}` }, "More like this") : null;
  return h("figure", { class: "card", dataset: { id, label: hit.label || "" } },
    h("a", { href: open }, thumbnail(id, hit.kind)),
    h("figcaption", {},
      h("span", { class: "label" }, hit.label || hit.original_name || hit.kind),
      score && h("span", { class: "score" }, score), similar,
      (hit.camera || hit.taken_at) && h("span", { class: "exif" },
        [hit.camera, hit.taken_at && new Date(hit.taken_at).toLocaleDateString()].filter(Boolean).join(" · "))));
}

function form(params) {
  const field = (name, attrs) => h("input", { name, value: params.get(name) || "", ...attrs });
  const kind = h("select", { name: "kind", "aria-label": "kind" },
    ["", "image", "video", "audio", "json"].map((k) => h("option", { value: k, selected: params.get("kind") === k }, k || "any kind")));
  const el = h("form", { class: "search", id: "search-form" },
    field("q", { type: "search", placeholder: "Words: a red car, the quarterly report…", "aria-label": "words" }),
    kind, field("label", { placeholder: "label", "aria-label": "label" }),
    h("label", {}, "from ", field("since", { type: "date" })), h("label", {}, "to ", field("until", { type: "date" })),
    h("fieldset", { class: "photo-filters" }, h("legend", {}, "Photos (EXIF)"),
      field("camera", { placeholder: "camera", "aria-label": "camera", size: 12 }),
      h("label", {}, "taken from ", field("taken_from", { type: "date" })),
      h("label", {}, "to ", field("taken_to", { type: "date" })),
      field("near", { placeholder: "lat,lon", "aria-label": "near", size: 12 }),
      field("within_km", { type: "number", min: "0.1", step: "any", placeholder: "km", "aria-label": "within km",
        style: "width:5.5rem" }),
      h("label", {}, h("input", { type: "checkbox", name: "gps", value: "1", checked: params.get("gps") === "1" }),
        " with GPS")),
    h("button", { type: "submit" }, "Search"));
  el.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/search?${query(Object.fromEntries(new FormData(el)))}`;
  });
  return el;
}

// The local midnight starting `date` (+ days), as the API's ISO 8601 time; the "to" day is included.
function midnight(date, days = 0) {
  if (!date) return null;
  const moment = new Date(`${date}T00:00:00`);
  moment.setDate(moment.getDate() + days);
  return moment.toISOString();
}

// The EXIF filters, as /v1/search and /v1/media take them. "With GPS": anywhere within 20,100 km of 0,0 (the
// whole globe), which only photos with a position match.
function photoFilters(params) {
  const gps = params.get("gps") === "1" && !params.get("near");
  return { camera: params.get("camera"), taken_after: midnight(params.get("taken_from")),
    taken_before: midnight(params.get("taken_to"), 1),
    near: gps ? "0,0" : params.get("near"), within_km: gps ? 20100 : params.get("within_km") };
}

// Where the next page comes from: the library (no words), words, or pictures like a stored or dropped one.
function source(params, dropped) {
  const filters = { kind: params.get("kind"), label: params.get("label"),
    since: midnight(params.get("since")), until: midnight(params.get("until"), 1), ...photoFilters(params) };
  const similar = dropped || params.get("similar");
  if (similar) {
    return async (offset) => {
      const body = new FormData();
      body.append(dropped ? "file" : "media_id", similar);
      body.append("limit", PAGE);
      body.append("offset", offset);
      return (await post("/v1/search/image", { form: body })).results;
    };
  }
  if (params.get("q")) {
    return async (offset, notes) => {
      const answer = await get(`/v1/search?${query({ q: params.get("q"), ...filters, limit: PAGE, offset })}`);
      notes(answer.degraded);
      return answer.results;
    };
  }
  return async (offset) => (await get(`/v1/media?${query({ ...filters, limit: PAGE, offset })}`)).items;
}

export function render(root, { params }, dropped = null) {
  const grid = h("div", { class: "results", id: "results" });
  const status = h("div", { class: "status" });
  const sentinel = h("div", { class: "sentinel" });
  const zone = h("div", { class: "dropzone small", id: "search-drop" }, "Drop an image here to find similar ones");
  const heading = dropped ? `Like ${dropped.name}` : params.get("similar") ? "More like this" : "Search";
  root.append(h("div", { class: "page-head" }, h("h1", {}, heading)), form(params), zone, status, grid, sentinel);
  if (params.get("deleted")) status.append(notice(`Deleted ${params.get("deleted")}.`, "info"));

  const next = source(params, dropped);
  const seen = new Set();
  let offset = 0, done = false, busy = false, inner = null;
  const notes = (degraded) => degraded?.length && status.replaceChildren(...degraded.map((d) => notice(d, "warning")));

  async function more() {
    if (done || busy) return;
    busy = true;
    try {
      const hits = await next(offset, notes);
      offset += PAGE;
      const fresh = hits.filter((hit) => !seen.has(hit.media_id ?? hit.id));
      fresh.forEach((hit) => seen.add(hit.media_id ?? hit.id));
      grid.append(...fresh.map(card));
      done = hits.length === 0 || fresh.length === 0;
      if (done && !seen.size) status.append(notice("Nothing found.", "info"));
    } catch (error) {
      done = true;
      status.append(notice(error.message));
    } finally {
      busy = false;
    }
    if (!done && sentinel.getBoundingClientRect().top < innerHeight + 400) more();
  }

  const observer = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && more(),
    { rootMargin: "400px" });
  observer.observe(sentinel);
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (!file) return;
    observer.disconnect();
    root.replaceChildren();
    inner = render(root, { params: new URLSearchParams() }, file);
  });
  more();
  return () => { observer.disconnect(); inner?.(); };
}
