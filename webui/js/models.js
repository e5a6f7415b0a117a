// The Models page: every file the server knows, its type, architecture, size, hash and
// loaded state; load, unload, refresh, upload and convert to GGUF (admins: the API refuses
// others anyway; the uploads and conversions themselves are modelops.js).

import { api } from "./api.js";
import { $, fmtBytes, h, toast } from "./dom.js";
import { loadModels } from "./form.js";
import { initModelOps, openConvert } from "./modelops.js";

// what the converter reads: whole models and their parts, not LoRAs, presets or upscalers
const CONVERTIBLE = ["checkpoint", "diffusion_model", "vae", "clip", "t5xxl", "text_encoder", "controlnet"];

async function act(path, message) {
  try {
    await api(path, { method: "POST" });
    toast(message);
    await renderModels();
    await loadModels();
  } catch (e) {
    toast(e.message, "error");
  }
}

// The requirements check: the server's validation (header, companions present) shown in the row.
async function check(m, cell) {
  cell.replaceChildren("checking…");
  try {
    const report = await api("/api/models/validate", { method: "POST", body: { model_id: m.id } });
    const failed = (report.checks || []).filter((c) => !c.ok).map((c) => c.message);
    cell.replaceChildren(report.valid
      ? h("span", { class: "ok" }, ["ok", ...(report.warnings || [])].join(" · "))
      : h("span", { class: "bad" }, failed.join(" · ") || "not valid"));
  } catch (e) {
    cell.replaceChildren(h("span", { class: "bad" }, e.message));
  }
}

function row(m) {
  const id = encodeURIComponent(m.id);
  const loadable = ["checkpoint", "diffusion_model"].includes(m.type);
  return h("tr", {},
    h("th", { scope: "row" }, m.name),
    h("td", {}, m.type),
    h("td", {}, m.architecture || ""),
    h("td", { class: "num" }, fmtBytes(m.size)),
    h("td", { class: "mono" }, m.short_hash || ""),
    h("td", {}, m.error ? h("span", { class: "bad" }, m.error) : m.loaded ? "loaded" : ""),
    h("td", { class: "requirements" }, h("button", { type: "button", class: "small",
      "aria-label": `Check ${m.name}'s requirements`, onclick: (e) => check(m, e.target.parentElement) }, "Check")),
    h("td", { class: "admin-only" }, loadable
      ? h("button", { type: "button", class: "small",
        onclick: () => act(`/api/models/${id}/${m.loaded ? "unload" : "load"}`, `${m.name}: ${m.loaded ? "unloaded" : "loaded"}`) },
      m.loaded ? "Unload" : "Load")
      : "",
    CONVERTIBLE.includes(m.type) && !/\.gguf$/i.test(m.id || "")
      ? h("button", { type: "button", class: "small", "aria-label": `Convert ${m.name} to GGUF`,
        onclick: () => openConvert(m) }, "To GGUF")
      : ""));
}

export async function renderModels() {
  const type = $("#models-type").value;
  const data = await api(`/api/models?limit=0${type ? `&type=${encodeURIComponent(type)}` : ""}`);
  const models = data.models || [];
  $("#models-body").replaceChildren(...models.map(row));
  $("#models-empty").hidden = models.length > 0;
}

export async function initModels() {
  try {
    const data = await api("/api/models/types");
    for (const t of data.types || []) $("#models-type").append(h("option", { value: t }, t));
  } catch { /* the list still works unfiltered */ }
  $("#models-type").addEventListener("change", () => renderModels().catch((e) => toast(e.message, "error")));
  $("#models-refresh").addEventListener("click", () => act("/api/models/refresh", "Model list refreshed."));
  await initModelOps(async () => { await renderModels(); await loadModels(); });
}
