// The Gallery: every finished image this user may see (from the queue's job list), a full
// view with the PNG's parameters, download, delete, "reuse these settings" and the request
// that made it as curl / Python / OpenAI SDK.

import { api, withQuery } from "./api.js";
import { $, h, toast } from "./dom.js";
import { apiName, parseParameters } from "./a1111.js";
import { snippets } from "./snippets.js";
import { makeZip } from "./zip.js";
import { dropJob, emit, jobs, on, shownOutputs } from "./state.js";

let items = [];
let index = -1;
let pending = false;

function collect() {
  const out = [];
  const all = [...jobs.values()].filter((j) => j.status === "completed" && j.outputs && j.outputs.length);
  all.sort((a, b) => (b.end_time || 0) - (a.end_time || 0));
  for (const job of all) {
    shownOutputs(job).forEach((url, i) => out.push({ job, url, i }));
  }
  return out;
}

// Filter by words of the prompt or the PNG parameters (so "tiny" finds Model: tiny) and age.
function filtered() {
  const q = $("#gallery-filter").value.trim().toLowerCase();
  const days = Number($("#gallery-age").value);
  const since = days ? Date.now() / 1000 - days * 86400 : 0;
  return items.filter((it) => {
    if (since && (it.job.end_time || 0) < since) return false;
    if (!q) return true;
    return `${it.job.prompt || ""}\n${paramsOf(it).text}`.toLowerCase().includes(q);
  });
}

function render() {
  pending = false;
  items = collect();
  const shown = filtered();
  const grid = $("#gallery-grid");
  grid.replaceChildren(...shown.map((it, n) =>
    h("li", {},
      h("button", { type: "button", class: "thumb", onclick: () => open(items.indexOf(it)),
        "aria-label": `Open image ${n + 1}: ${it.job.prompt || ""}` },
        h("img", { src: isVideo(it.url) ? it.url : withQuery(it.url, { thumb: 1, size: 256 }), alt: "", loading: "lazy" })))));
  $("#gallery-empty").hidden = shown.length > 0;
}

const isVideo = (url) => /\.(webm|mp4)(\?|$)/.test(url);

function paramsOf(it) {
  const text = (it.job.result && it.job.result.parameters || [])[it.i] || "";
  return { text, values: parseParameters(text) || {} };
}

function requestOf(it) {
  if (it.job.request) return it.job.request;
  const { values } = paramsOf(it);
  const body = { prompt: values.prompt || it.job.prompt || "" };
  for (const k of ["negative_prompt", "width", "height", "steps", "cfg_scale", "seed", "clip_skip"]) {
    if (values[k] !== undefined && values[k] !== "") body[k] = values[k];
  }
  if (values.sampling_method) body.sampling_method = apiName("sampler", values.sampling_method);
  if (values.scheduler) body.scheduler = apiName("scheduler", values.scheduler);
  if (values.model_name) body.model_name = values.model_name;
  return { endpoint: "/api/generate/text2img", body };
}

function reuse(it) {
  const { body } = requestOf(it);
  const values = { ...body, kind: ["img2img", "inpainting"].includes(it.job.type) ? it.job.type : "txt2img" };
  for (const k of ["init_image", "mask_image", "image"]) delete values[k];
  $("#viewer").close();
  emit("reuse", values);
}

async function remove(it) {
  if (!confirm("Delete this job and its images?")) return;
  try {
    await api(`/api/queue/job/${encodeURIComponent(it.job.id)}`, { method: "DELETE" });
    dropJob(it.job.id);
    $("#viewer").close();
    toast("Deleted.");
  } catch (e) {
    toast(e.message, "error");
  }
}

function showSnippet(which, it) {
  const { endpoint, body } = requestOf(it);
  $("#viewer-code").textContent = snippets(endpoint, body)[which];
  for (const b of document.querySelectorAll("#viewer-code-tabs [data-code]")) {
    b.setAttribute("aria-pressed", String(b.dataset.code === which));
  }
}

// Zoom: at least twice the fitted size (a small image shown whole would not grow at its
// natural size), or its natural pixels when larger; the viewer scrolls. CSSOM, not a style
// attribute: the CSP allows no inline style.
function zoom(img) {
  const on = !img.classList.contains("zoomed");
  img.style.width = on ? `${Math.max(img.naturalWidth, 2 * img.getBoundingClientRect().width)}px` : "";
  img.classList.toggle("zoomed", on);
}

export function open(n) {
  if (n < 0 || n >= items.length) return;
  index = n;
  const it = items[n];
  const dialog = $("#viewer");
  const media = isVideo(it.url)
    ? h("video", { src: it.url, controls: true, loop: true, autoplay: true })
    : h("img", { src: it.url, alt: it.job.prompt || "generated image", class: "full",
      title: "Click to zoom", onclick: (e) => zoom(e.target) });
  $("#viewer-media").replaceChildren(media);
  $("#viewer-title").textContent = `${n + 1} / ${items.length} · ${it.job.type || ""}`;
  $("#viewer-params").textContent = paramsOf(it).text || it.job.prompt || "";
  const download = $("#viewer-download");
  download.href = it.url;
  download.download = `${it.job.id}-${it.i}.${(it.url.split("?")[0].split(".").pop()) || "png"}`;
  $("#viewer-reuse").onclick = () => reuse(it);
  $("#viewer-delete").onclick = () => remove(it);
  for (const b of document.querySelectorAll("#viewer-code-tabs [data-code]")) {
    b.onclick = () => showSnippet(b.dataset.code, it);
  }
  $("#viewer-copy").onclick = () => navigator.clipboard.writeText($("#viewer-code").textContent)
    .then(() => toast("Copied."), () => toast("Copy failed: select the text instead.", "error"));
  showSnippet("curl", it);
  if (!dialog.open) dialog.showModal();
}

export function step(delta) {
  if ($("#viewer").open) open(Math.min(items.length - 1, Math.max(0, index + delta)));
  else if (items.length) open(delta > 0 ? 0 : items.length - 1);
}

function later() {
  if (!pending) { pending = true; requestAnimationFrame(render); }
}

async function downloadAll() {
  const shown = filtered();
  if (!shown.length) return;
  toast(`Packing ${shown.length} file(s)…`);
  const files = [];
  for (const it of shown) {
    const res = await fetch(it.url, { credentials: "same-origin" });
    if (!res.ok) continue;
    const ext = it.url.split("?")[0].split(".").pop() || "png";
    files.push({ name: `${it.job.id}-${it.i}.${ext}`, bytes: new Uint8Array(await res.arrayBuffer()) });
  }
  const link = h("a", { href: URL.createObjectURL(makeZip(files)), download: "sdcpp-images.zip" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

export function initGallery() {
  $("#gallery-zip").addEventListener("click", () => downloadAll().catch((e) => toast(e.message, "error")));
  on("job", (job) => { if (job.status === "completed") later(); });
  on("job-removed", later);
  $("#gallery-filter").addEventListener("input", later);
  $("#gallery-age").addEventListener("change", later);
  $("#viewer-prev").addEventListener("click", () => step(-1));
  $("#viewer-next").addEventListener("click", () => step(1));
  $("#viewer-close").addEventListener("click", () => $("#viewer").close());
}
