// Presets and prompt templates (seed 002's presets/, prompts/ and neg_prompts/ folders, through
// /api/presets and /api/prompts): pick one to fill the form; save the form as a preset (admins
// into the shared folder, users into their own: the server decides where); delete the picked
// one (yours; shared ones only for admins, as the API insists too).

import { api } from "./api.js";
import { $, clear, h, toast } from "./dom.js";
import { applyValues, readForm } from "./form.js";
import { session } from "./state.js";

let presets = [];
let templates = { prompts: [], neg_prompts: [] };

// other UIs' spellings of our fields, as preset files written for them use them
const ALIASES = { sampler: "sampling_method", sampler_name: "sampling_method", cfg: "cfg_scale",
  model: "model_name", negative: "negative_prompt", batch_size: "batch_count" };
// what a preset does not keep: the prompts have templates, a random seed is no setting
const NOT_SAVED = ["prompt", "negative_prompt"];

function fill(select, items, empty) {
  clear(select).append(h("option", { value: "" }, empty));
  items.forEach((it, i) => {
    const label = it.error ? `${it.name} (unreadable)` : `${it.name}${it.scope === "own" ? " (mine)" : ""}`;
    select.append(h("option", { value: String(i), disabled: Boolean(it.error), title: it.error || it.description || "" }, label));
  });
  select.closest("label").hidden = items.length === 0 && select.id !== "preset-pick";
}

export async function loadPresets() {
  const [p, t] = await Promise.all([
    api("/api/presets", { quiet: true }).catch(() => ({ presets: [] })),
    api("/api/prompts", { quiet: true }).catch(() => ({ prompts: [], neg_prompts: [] })),
  ]);
  presets = p.presets || [];
  templates = { prompts: t.prompts || [], neg_prompts: t.neg_prompts || [] };
  fill($("#preset-pick"), presets, presets.length ? "Presets…" : "No presets yet");
  showDelete();
  fill($("#prompt-template"), templates.prompts, "Prompt templates…");
  fill($("#neg-template"), templates.neg_prompts, "Negative templates…");
}

function applyPreset(preset) {
  const values = { prompt: $("#f-prompt").value, negative_prompt: $("#f-negative_prompt").value };
  for (const [k, v] of Object.entries(preset.parameters || {})) values[ALIASES[k] || k] = v;
  if (values.seed === "random" || values.seed === -1) { delete values.seed; $("#f-seed").value = ""; }
  applyValues(values);
  toast(`Preset "${preset.name}" applied.`);
}

// "{prompt}" in a template stands for what is already written; otherwise the template is added
export function applyTemplate(field, text) {
  const current = field.value.trim();
  if (text.includes("{prompt}")) field.value = text.replaceAll("{prompt}", current);
  else field.value = current ? `${current}, ${text}` : text;
  field.dispatchEvent(new Event("input", { bubbles: true }));
}

function presetBody(name) {
  const parameters = {};
  for (const [k, v] of Object.entries(readForm())) {
    if (NOT_SAVED.includes(k) || v === undefined || (k === "seed" && v === "random")) continue;
    parameters[k] = v;
  }
  return { name, parameters };
}

async function savePreset() {
  const name = $("#preset-name").value.trim();
  if (!name) return;
  try {
    let saved;
    try {
      saved = await api("/api/presets", { method: "POST", body: presetBody(name) });
    } catch (err) {
      if (err.status !== 409 || !confirm(`Replace the preset "${name}"?`)) throw err;
      saved = await api("/api/presets", { method: "POST", body: { ...presetBody(name), overwrite: true } });
    }
    toast(`Saved preset "${saved.name}"${saved.scope === "own" ? " (yours)" : " (shared)"}.`);
    showSaveBox(false);
    await loadPresets();
    const index = presets.findIndex((p) => p.id === saved.id);
    if (index >= 0) $("#preset-pick").value = String(index);
    showDelete();
  } catch (err) {
    toast(err.message, "error");
  }
}

const picked = () => ($("#preset-pick").value === "" ? null : presets[Number($("#preset-pick").value)]);

// shared presets are the admins' (everyone's without auth: then the caller is admin)
const mayDelete = (p) => p && (p.scope === "own" || !session.authEnabled
  || (session.user && session.user.role === "admin"));

function showDelete() {
  const preset = picked();
  const button = $("#preset-delete");
  button.hidden = !mayDelete(preset);
  if (preset) button.setAttribute("aria-label", `Delete preset ${preset.name}`);
}

async function deletePreset() {
  const preset = picked();
  if (!preset || !confirm(`Delete the preset "${preset.name}"?`)) return;
  try {
    const path = preset.id.split("/").map(encodeURIComponent).join("/");
    await api(`/api/presets/${path}`, { method: "DELETE" });
    toast(`Deleted preset "${preset.name}".`);
    await loadPresets();
  } catch (err) {
    toast(err.message, "error");
  }
}

export function initPresets() {
  $("#preset-pick").addEventListener("change", (e) => {
    const preset = presets[Number(e.target.value)];
    if (e.target.value !== "" && preset) applyPreset(preset);
    showDelete();
  });
  $("#preset-delete").addEventListener("click", deletePreset);
  for (const [id, kind, target] of [["#prompt-template", "prompts", "#f-prompt"],
    ["#neg-template", "neg_prompts", "#f-negative_prompt"]]) {
    $(id).addEventListener("change", (e) => {
      const template = templates[kind][Number(e.target.value)];
      if (e.target.value !== "" && template) applyTemplate($(target), template.text);
      e.target.value = "";
    });
  }
  $("#preset-save").addEventListener("click", () => showSaveBox($("#preset-save-box").hidden));
  $("#preset-save-confirm").addEventListener("click", savePreset);
  $("#preset-name").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault(); // Enter here saves the preset, it does not submit (generate) the form
    e.stopPropagation();
    savePreset();
  });
}

function showSaveBox(show) {
  $("#preset-save-box").hidden = !show;
  $("#preset-save").setAttribute("aria-expanded", String(show));
  if (show) $("#preset-name").focus();
}
