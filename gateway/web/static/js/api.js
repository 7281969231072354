// The gateway's API as the pages use it. The API key, when the gateway wants one, lives in sessionStorage
// and travels only in the Authorization header: never in a URL, never in the page.
const KEY = "mediamesh.apiKey";
const objectUrls = [];

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const hasKey = () => Boolean(sessionStorage.getItem(KEY));
export const setKey = (key) => sessionStorage.setItem(KEY, key);

function headers(extra = {}) {
  const key = sessionStorage.getItem(KEY);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

function message(body) {
  if (typeof body === "string") return body.slice(0, 300);
  const detail = body?.detail ?? body?.error?.message ?? body;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

async function send(path, init) {
  const response = await fetch(path, { ...init, headers: headers(init.headers) });
  if (response.status === 401) {
    sessionStorage.removeItem(KEY);
    window.dispatchEvent(new Event("mm:need-key"));
  }
  return response;
}

// JSON in, JSON out. `allow`: error statuses whose body is still the answer (health's 503).
export async function request(method, path, { json, form, allow = [] } = {}) {
  const init = { method, headers: json ? { "Content-Type": "application/json" } : {} };
  if (json !== undefined) init.body = JSON.stringify(json);
  if (form !== undefined) init.body = form;
  const response = await send(path, init);
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok && !allow.includes(response.status)) throw new ApiError(response.status, message(body));
  return body;
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, options) => request("POST", path, options);
export const del = (path, options) => request("DELETE", path, options);

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== "" && value != null) search.set(name, value);
  return search.toString();
}

// A URL for <img>/<video>/<audio>: the API path itself, or (since those tags cannot send a header)
// a blob fetched with the key when there is one.
export async function mediaUrl(path) {
  if (!hasKey()) return path;
  const response = await send(path, {});
  if (!response.ok) throw new ApiError(response.status, `${path}: HTTP ${response.status}`);
  const url = URL.createObjectURL(await response.blob());
  objectUrls.push(url);
  return url;
}

export function releaseMedia() {
  for (const url of objectUrls.splice(0)) URL.revokeObjectURL(url);
}
