// Small helpers to build the pages: elements from data (text is always text, never parsed as HTML).
import { mediaUrl } from "./api.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "style") el.style.cssText = value; // through the CSSOM: allowed by the page's CSP
    else el.setAttribute(name, value === true ? "" : value);
  }
  el.append(...children.flat(Infinity).filter((c) => c != null && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return el;
}

export function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  for (; Math.abs(n) >= 1024 && i < units.length - 1; i++) n /= 1024;
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

// An element whose `src` arrives once fetched (see mediaUrl); a failed load shows `fallback` instead.
export function sourced(tag, path, attrs = {}, fallback = "") {
  const el = h(tag, attrs);
  mediaUrl(path).then((url) => { el.src = url; }, () => el.replaceWith(h("span", { class: "missing" }, fallback)));
  if (tag === "img") el.addEventListener("error", () => el.replaceWith(h("span", { class: "missing" }, fallback)));
  return el;
}

export const thumbnail = (mediaId, kind, size = 256) =>
  sourced("img", `/v1/media/${encodeURIComponent(mediaId)}/thumbnail?size=${size}`,
    { alt: kind, loading: "lazy", class: "thumb" }, kind);

export function notice(text, kind = "error") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}
