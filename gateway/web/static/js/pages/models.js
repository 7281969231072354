// Models: the memory budget split by model, each model's state, pin and idle time left; load and unload; live.
import { get, post } from "../api.js";
import { bytes, clock, h, notice } from "../dom.js";

const REFRESH_MS = 2000;
const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f"];

// `GET /v1/models` is OpenAI's list (`data`, each with `id`) with the residency view in extra fields.
const modelsOf = (report) => report.data.map((m) => ({ ...m, name: m.id }));

function idleLeft(model) {
  if (model.pinned) return "pinned";
  if (!model.expires_at) return "–";
  return clock((new Date(model.expires_at) - Date.now()) / 1000);
}

function budgetBar(report, models) {
  const budget = report.budget_bytes || 1;
  const held = models.filter((m) => m.reserved_bytes > 0);
  const segments = held.map((m) => h("div", {
    class: "segment", title: `${m.name}: ${bytes(m.reserved_bytes)}`,
    dataset: { model: m.name, reserved: m.reserved_bytes },
    style: `width:max(3px, ${(100 * m.reserved_bytes) / budget}%);background:${m.color}`,
  }));
  return h("section", { class: "budget" },
    h("div", { class: "bar", id: "budget-bar", dataset: { reserved: report.reserved_bytes } }, segments),
    h("p", { class: "legend" },
      `${bytes(report.reserved_bytes)} reserved of ${bytes(report.budget_bytes)} · ${bytes(report.free_bytes)} free`,
      held.map((m) => h("span", { class: "key" }, h("i", { style: `background:${m.color}` }), m.name))));
}

function row(model, act) {
  const busy = model.state === "loading" || model.state === "unloading";
  const button = (what, disabled) => h("button", {
    type: "button", dataset: { action: what, model: model.name }, disabled: disabled || busy,
    onclick: (event) => act(event.currentTarget, what, model.name),
  }, what === "load" ? "Load" : "Unload");
  return h("tr", { dataset: { model: model.name, state: model.state } },
    h("td", {}, h("i", { class: "swatch", style: `background:${model.color}` }), model.name),
    h("td", {}, h("span", { class: `badge ${model.state}` }, model.state)),
    h("td", {}, bytes(model.reserved_bytes)),
    h("td", {}, model.footprint_bytes ? bytes(model.footprint_bytes) : `~${bytes(model.estimated_bytes)}`),
    h("td", {}, model.pinned ? "yes" : "no"),
    h("td", {}, idleLeft(model)),
    h("td", { class: "actions" }, button("load", model.state === "loaded"),
      button("unload", model.state !== "loaded" || model.pinned)),
    h("td", { class: "error-text" }, model.error || ""));
}

export function render(root) {
  const body = h("div");
  const status = h("div");
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Models")), status, body);

  async function act(button, what, name) {
    button.disabled = true;
    button.textContent = what === "load" ? "Loading…" : "Unloading…";
    status.replaceChildren();
    try {
      await post(`/v1/models/${encodeURIComponent(name)}/${what}`);
    } catch (error) {
      status.replaceChildren(notice(`${what} ${name}: ${error.message}`));
    }
    load();
  }

  async function load() {
    try {
      const report = await get("/v1/models");
      const models = modelsOf(report).map((m, i) => ({ ...m, color: COLORS[i % COLORS.length] }));
      body.replaceChildren(budgetBar(report, models), h("table", { class: "grid-table", id: "models" },
        h("thead", {}, h("tr", {}, ["Model", "State", "Reserved", "Footprint", "Pinned", "Idle left", "", "Error"]
          .map((t) => h("th", {}, t)))),
        h("tbody", {}, models.map((m) => row(m, act)))));
    } catch (error) {
      body.replaceChildren(notice(`Could not read the models: ${error.message}`));
    }
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}
