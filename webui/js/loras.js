// The LoRA picker: writes <lora:name:weight> into the prompt (or changes the weight of the one
// already there), as every sdcpp dialect reads it.

import { $, toast } from "./dom.js";

const TAG = (name) => new RegExp(`<lora:${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:[^>]*>`);

export function addLora(name, weight) {
  const prompt = $("#f-prompt");
  const tag = `<lora:${name}:${weight}>`;
  const existing = TAG(name);
  if (existing.test(prompt.value)) prompt.value = prompt.value.replace(existing, tag);
  else prompt.value = `${prompt.value.trimEnd()}${prompt.value.trim() ? " " : ""}${tag}`;
}

export function initLoras() {
  $("#lora-add").addEventListener("click", () => {
    const name = $("#lora-name").value;
    if (!name) {
      toast("Pick a LoRA first (put .safetensors files in models/loras, then Refresh).");
      return;
    }
    const weight = Number($("#lora-weight").value || 1);
    addLora(name, Number.isFinite(weight) ? weight : 1);
  });
}
