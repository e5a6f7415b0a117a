// The generation form, built from /api/parameters, /api/samplers, /api/schedulers and
// /api/models; reads itself into a request body and takes values back ("reuse settings").

import { api } from "./api.js";
import { $, $$, clear, h } from "./dom.js";
import { FIELDS, KINDS, OUTPUT_FORMATS, OWN_CONTROLS, SIZE_PRESETS } from "./fields.js";
import { emit, session } from "./state.js";

export let limits = {};
let kind = "txt2img";

export const currentKind = () => kind;

function numberInput(name, spec, label) {
  const step = spec.step ?? spec.multiple_of ?? (Number.isInteger(spec.min) && Number.isInteger(spec.max) ? 1 : 0.1);
  const input = h("input", {
    id: `f-${name}`, name, type: "number", inputmode: "decimal",
    min: spec.min, max: spec.max, step,
    placeholder: spec.default !== undefined ? String(spec.default) : "model default",
  });
  if (FIELDS[name]?.prefill && spec.default !== undefined) input.value = spec.default;
  const hint = spec.min !== undefined ? `${spec.min}–${spec.max}` : "";
  return h("label", { class: "field", dataset: { field: name } },
    h("span", {}, label, " ", h("small", {}, hint)), input);
}

function fieldKinds(name) {
  return FIELDS[name]?.kinds || ["txt2img", "img2img", "inpainting"];
}

function fillSelect(select, values, { empty } = {}) {
  clear(select);
  if (empty) select.append(h("option", { value: "" }, empty));
  for (const v of values) {
    const [value, text] = Array.isArray(v) ? v : [v, v];
    select.append(h("option", { value }, text));
  }
}

export async function loadModels() {
  const data = await api("/api/models?limit=0");
  const models = data.models || [];
  const main = models.filter((m) => ["checkpoint", "diffusion_model"].includes(m.type));
  const upscalers = models.filter((m) => ["esrgan", "upscaler"].includes(m.type));
  const of = (type) => models.filter((m) => m.type === type).map((m) => [m.id, m.name]);
  fillSelect($("#f-control_net"), of("controlnet"), { empty: "First available" });
  fillSelect($("#lora-name"), models.filter((m) => m.type === "lora").map((m) => [m.name, m.name]),
    { empty: "LoRAs…" });
  const current = $("#f-model_name").value;
  fillSelect($("#f-model_name"),
    main.map((m) => [m.id, `${m.name}${m.architecture ? ` · ${m.architecture}` : ""}${m.loaded ? " (loaded)" : ""}`]),
    { empty: "Server default" });
  if (current) $("#f-model_name").value = current;
  fillSelect($("#f-upscaler"), upscalers.map((m) => [m.id, m.name]), { empty: "First available" });
  return models;
}

export async function buildForm() {
  const params = await api("/api/parameters");
  // /api/parameters lists samplers and schedulers too; older servers: their own routes
  const [samplers, schedulers] = await Promise.all([
    params.samplers ? params : api("/api/samplers"),
    params.schedulers ? params : api("/api/schedulers"),
  ]);
  limits = params.parameters || {};
  fillSelect($("#f-sampling_method"), samplers.samplers || [], { empty: "Model default" });
  fillSelect($("#f-scheduler"), schedulers.schedulers || [], { empty: "Model default" });
  fillSelect($("#f-output_format"), params.output_formats || OUTPUT_FORMATS);
  const cache = new Set();
  for (const family of Object.values(params.cache || {})) {
    for (const name of [...(family.presets || []), ...(family.modes || [])]) cache.add(name);
  }
  fillSelect($("#f-cache"), [...cache].filter((c) => c !== "off"), { empty: "Off" });
  fillSelect($("#size-preset"), SIZE_PRESETS.map(([w, hh]) => [`${w}x${hh}`, `${w} × ${hh}`]),
    { empty: "Presets…" });
  for (const side of ["width", "height"]) {
    const spec = limits[side] || { min: 64, max: 4096, default: 512 };
    const input = $(`#f-${side}`);
    Object.assign(input, { min: spec.min, max: spec.max, step: spec.multiple_of || spec.step || 8 });
    input.value = spec.default ?? 512;
  }
  const basic = clear($("#params-basic"));
  const more = clear($("#params-more"));
  const names = new Set([...Object.keys(FIELDS), ...Object.keys(limits)]);
  for (const name of names) {
    if (OWN_CONTROLS.has(name)) continue;
    const spec = { ...FIELDS[name], ...limits[name] };
    const label = FIELDS[name]?.label || name.replace(/_/g, " ");
    const el = numberInput(name, spec, label);
    el.dataset.kinds = fieldKinds(name).join(" ");
    (FIELDS[name]?.group === "basic" ? basic : more).append(el);
  }
  setKind(kind);
  await loadModels();
}

export function setKind(next) {
  kind = next;
  const info = KINDS[kind];
  for (const tab of $$("#kind-tabs [role=tab]")) {
    const on = tab.dataset.kind === kind;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
  }
  for (const el of $$("[data-kinds]")) el.hidden = !el.dataset.kinds.split(" ").includes(kind);
  $("#image-input").hidden = !info.image;
  $("#mask-editor").hidden = !info.mask;
  document.body.dataset.kind = kind;
  emit("kind", kind);
}

function numberOf(id) {
  const el = $(id);
  if (!el || el.closest("[hidden]") || el.value === "") return undefined;
  return Number(el.value);
}

// The request body of the current form (images are added by the caller).
export function readForm() {
  const body = {};
  if (kind === "upscale") {
    if ($("#f-upscaler").value) body.upscaler = $("#f-upscaler").value;
    const factor = numberOf("#f-factor");
    if (factor !== undefined) body.factor = factor;
    body.output_format = $("#f-output_format").value;
    return body;
  }
  body.prompt = $("#f-prompt").value;
  const negative = $("#f-negative_prompt").value;
  if (negative) body.negative_prompt = negative;
  const model = $("#f-model_name").value;
  if (model) body.model_name = model;
  body.width = numberOf("#f-width");
  body.height = numberOf("#f-height");
  for (const el of $$("#params-basic input, #params-more input")) {
    const value = numberOf(`#${el.id}`);
    if (value !== undefined && el.name !== "factor") body[el.name] = value;
  }
  for (const name of ["sampling_method", "scheduler", "cache", "output_format", "control_net"]) {
    const el = $(`#f-${name}`);
    if (el.value && !el.closest("[hidden]")) body[name] = el.value;
  }
  if (!$("#f-canny").closest("[hidden]") && $("#f-canny").checked) body.canny = true;
  const seed = $("#f-seed").value.trim();
  body.seed = seed === "" || Number(seed) < 0 ? "random" : Number(seed);
  return body;
}

// Put values (a job's parameters, an A1111 PNG's) back into the form.
export function applyValues(values) {
  const set = (id, v) => { const el = $(id); if (el && v !== undefined && v !== null) el.value = v; };
  set("#f-prompt", values.prompt);
  set("#f-negative_prompt", values.negative_prompt ?? "");
  for (const [k, v] of Object.entries(values)) {
    if (["prompt", "negative_prompt", "model_name"].includes(k)) continue;
    set(`#f-${k}`, v);
  }
  if (values.seed !== undefined) {
    session.lastSeed = values.seed;
    $("#f-seed").value = values.seed;
  }
  $("#f-prompt").dispatchEvent(new Event("input")); // who reads the prompt (the LoRA list)
  if (values.model_name) {
    const option = $$("#f-model_name option").find((o) => o.value === values.model_name
      || o.textContent.startsWith(values.model_name));
    if (option) $("#f-model_name").value = option.value;
  }
}
