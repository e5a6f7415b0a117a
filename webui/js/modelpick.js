// Picking a model: its architecture's recommended settings go into the form (the plan's
// `recommended`), and the companions it still lacks are named under the picker.

import { api } from "./api.js";
import { $, h, toast } from "./dom.js";

const ALIASES = { sampler: "sampling_method", sample_method: "sampling_method" };

export async function describeModel(id) {
  const note = $("#model-note");
  if (!id) { note.replaceChildren(); return; }
  let info;
  try {
    info = await api(`/api/models/${encodeURIComponent(id)}`);
  } catch (e) {
    note.replaceChildren(h("span", { class: "bad" }, e.message));
    return;
  }
  const plan = info.plan || {};
  const applied = [];
  for (const [key, value] of Object.entries(plan.recommended || {})) {
    const el = $(`#f-${ALIASES[key] || key}`);
    if (el && value !== null && value !== undefined && typeof value !== "boolean") {
      el.value = value;
      applied.push(`${key} ${value}`);
    }
  }
  const missing = info.missing_companions || plan.missing || [];
  note.replaceChildren(
    plan.architecture ? h("span", {}, plan.architecture) : null,
    applied.length ? h("span", {}, ` · recommended: ${applied.join(", ")}`) : null,
    missing.length
      ? h("span", { class: "bad" }, ` · missing: ${missing.map((m) => (typeof m === "string" ? m : m.kind || m.name || JSON.stringify(m))).join(", ")}`)
      : null,
  );
  if (applied.length) toast(`Recommended settings for ${plan.architecture || "this model"} applied.`);
}

export function initModelPick() {
  $("#f-model_name").addEventListener("change", (e) => describeModel(e.target.value));
}
