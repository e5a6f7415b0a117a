// The LoRA picker: writes <lora:name:weight> into the prompt (or changes the weight of the one
// already there), as every sdcpp dialect reads it; and lists the prompt's LoRAs in order, each
// with its weight, move up / down (the order they are applied in) and remove. The prompt text
// stays the one truth: the list is read from it and every change is written back into it.

import { $, h, toast } from "./dom.js";

const ANY_TAG = /<lora:([^:>]+):([^>]*)>/g;
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const TAG = (name) => new RegExp(`<lora:${escape(name)}:[^>]*>`);

export function promptLoras(text) {
  return [...text.matchAll(ANY_TAG)].map((m) => ({
    name: m[1], weight: m[2], start: m.index, end: m.index + m[0].length,
  }));
}

function setPrompt(value) {
  const prompt = $("#f-prompt");
  prompt.value = value;
  renderLoras();
}

export function addLora(name, weight) {
  const prompt = $("#f-prompt");
  const tag = `<lora:${name}:${weight}>`;
  const existing = TAG(name);
  if (existing.test(prompt.value)) setPrompt(prompt.value.replace(existing, tag));
  else setPrompt(`${prompt.value.trimEnd()}${prompt.value.trim() ? " " : ""}${tag}`);
}

// Rewrite the tags in place: tag i of the prompt becomes tags[i] (null: removed); the text
// between them stays.
function writeTags(tags) {
  const text = $("#f-prompt").value;
  const found = promptLoras(text);
  let out = "";
  let at = 0;
  found.forEach((f, i) => {
    out += text.slice(at, f.start);
    if (tags[i]) out += `<lora:${tags[i].name}:${tags[i].weight}>`;
    at = f.end;
  });
  out += text.slice(at);
  setPrompt(tags.includes(null) ? out.replace(/ {2,}/g, " ").trim() : out);
}

export function moveLora(index, by) {
  const tags = promptLoras($("#f-prompt").value);
  const to = index + by;
  if (to < 0 || to >= tags.length) return;
  [tags[index], tags[to]] = [tags[to], tags[index]];
  writeTags(tags);
  $(`#lora-list li:nth-child(${to + 1}) button[data-move="${by}"]`)?.focus();
}

function item(tag, i, count) {
  const label = `LoRA ${tag.name}`;
  return h("li", { dataset: { name: tag.name } },
    h("span", { class: "name" }, tag.name),
    h("label", {}, h("span", { class: "visually-hidden" }, `${label} weight`),
      h("input", { type: "number", step: "0.05", value: tag.weight, "aria-label": `${label} weight`,
        onchange: (e) => {
          const tags = promptLoras($("#f-prompt").value);
          tags[i].weight = e.target.value === "" ? "1" : e.target.value;
          writeTags(tags);
        } })),
    h("button", { type: "button", class: "small", "aria-label": `Move ${tag.name} up`, disabled: i === 0,
      dataset: { move: "-1" }, onclick: () => moveLora(i, -1) }, "↑"),
    h("button", { type: "button", class: "small", "aria-label": `Move ${tag.name} down`,
      disabled: i === count - 1, dataset: { move: "1" }, onclick: () => moveLora(i, 1) }, "↓"),
    h("button", { type: "button", class: "small", "aria-label": `Remove ${tag.name}`,
      onclick: () => writeTags(promptLoras($("#f-prompt").value).map((t, j) => (j === i ? null : t))) }, "✕"));
}

export function renderLoras() {
  const tags = promptLoras($("#f-prompt").value);
  $("#lora-list").replaceChildren(...tags.map((t, i) => item(t, i, tags.length)));
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
  $("#f-prompt").addEventListener("input", renderLoras);
  renderLoras();
}
