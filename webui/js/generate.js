// The Generate page: size and seed controls, submit, the running job's progress and cancel.

import { api } from "./api.js";
import { $, fmtMs, h, toast } from "./dom.js";
import { KINDS } from "./fields.js";
import { applyValues, currentKind, limits, readForm, setKind } from "./form.js";
import { sourceImage } from "./imageinput.js";
import { maskDataUrl, maskIsEmpty } from "./mask.js";
import { FINISHED, jobs, on, putJob, session, shownOutputs } from "./state.js";

let watching = null; // the job id the progress panel follows
let lastBody = null;

const sideStep = () => (limits.width && (limits.width.multiple_of || limits.width.step)) || 8;

function roundSide(v) {
  const step = sideStep();
  return Math.max(step, Math.round(v / step) * step);
}

function initSize() {
  const w = $("#f-width");
  const hh = $("#f-height");
  let ratio = 1;
  $("#size-preset").addEventListener("change", (e) => {
    if (!e.target.value) return;
    const [pw, ph] = e.target.value.split("x").map(Number);
    w.value = pw;
    hh.value = ph;
    ratio = pw / ph;
    e.target.value = "";
  });
  $("#size-swap").addEventListener("click", () => {
    [w.value, hh.value] = [hh.value, w.value];
    ratio = Number(w.value) / Number(hh.value);
  });
  $("#size-lock").addEventListener("change", () => { ratio = Number(w.value) / Number(hh.value); });
  w.addEventListener("change", () => {
    if ($("#size-lock").checked) hh.value = roundSide(Number(w.value) / ratio);
  });
  hh.addEventListener("change", () => {
    if ($("#size-lock").checked) w.value = roundSide(Number(hh.value) * ratio);
  });
}

function initSeed() {
  $("#seed-random").addEventListener("click", () => { $("#f-seed").value = ""; });
  $("#seed-reuse").addEventListener("click", () => {
    if (session.lastSeed === null) toast("No seed yet: generate an image first.");
    else $("#f-seed").value = session.lastSeed;
  });
}

export async function generate() {
  const kind = currentKind();
  const info = KINDS[kind];
  const body = readForm();
  if (kind !== "upscale" && !body.prompt.trim()) {
    toast("Write a prompt first.", "error");
    $("#f-prompt").focus();
    return null;
  }
  if (info.image) {
    const image = sourceImage();
    if (!image && !info.optionalImage) {
      toast("Choose a source image first (file, drop or paste).", "error");
      return null;
    }
    if (image) body[info.image] = image.dataUrl;
    if (info.mask) {
      if (maskIsEmpty()) {
        toast("Paint the area to repaint on the mask first.", "error");
        return null;
      }
      body.mask_image = maskDataUrl();
    }
  }
  const button = $("#generate");
  button.disabled = true;
  try {
    const answer = await api(info.endpoint, { method: "POST", body });
    lastBody = { endpoint: info.endpoint, body };
    putJob({ id: answer.job_id, job_id: answer.job_id, status: "queued", type: kind,
      prompt: body.prompt || "", request: lastBody });
    watch(answer.job_id);
    if (!$("#seed-lock").checked && typeof body.seed === "number") $("#f-seed").value = "";
    return answer.job_id;
  } catch (e) {
    toast(e.message, "error");
    return null;
  } finally {
    button.disabled = false;
  }
}

export const lastRequest = () => lastBody;

// "the current job": the one this page follows while it is unfinished, else the running one
function currentJob() {
  const followed = watching && jobs.get(watching);
  if (followed && !FINISHED.has(followed.status)) return watching;
  const running = [...jobs.values()].find((j) => j.status === "processing");
  return running ? running.id : null;
}

export async function cancelJob(id = currentJob()) {
  if (!id) return;
  try {
    const answer = await api("/api/queue/cancel", { method: "POST", body: { job_id: id } });
    toast(answer.message);
  } catch (e) {
    toast(e.message, "error");
  }
}

function watch(id) {
  watching = id;
  render(jobs.get(id));
}

// The live step preview: one load at a time (a new step never aborts the one in flight).
let previewLoading = false;

function showPreview(job, wanted) {
  const preview = $("#progress-preview");
  if (!wanted) { preview.hidden = true; return; }
  if (previewLoading) return;
  previewLoading = true;
  const next = new Image();
  next.onload = () => { preview.src = next.src; preview.hidden = false; previewLoading = false; };
  next.onerror = () => { previewLoading = false; }; // the job just ended: its preview is gone
  next.src = `/api/queue/job/${encodeURIComponent(job.id)}/preview?step=${job.current_step || 0}`;
}

function render(job) {
  const panel = $("#progress-panel");
  if (!job) { panel.hidden = true; return; }
  panel.hidden = false;
  const bar = $("#progress-bar");
  const running = job.status === "processing";
  const fraction = job.status === "completed" ? 1 : job.progress || 0;
  bar.value = fraction;
  bar.textContent = `${Math.round(fraction * 100)}%`;
  const parts = [job.status];
  if (job.status === "queued" && job.position) parts.push(`position ${job.position}`);
  if (running && job.phase) parts.push(job.phase);
  if (running && job.total_steps) parts.push(`step ${job.current_step || 0}/${job.total_steps}`);
  if (running && job.time_remaining) parts.push(`ETA ${fmtMs(job.time_remaining)}`);
  if (job.error) parts.push(job.error);
  $("#progress-text").textContent = parts.join(" · ");
  $("#cancel").hidden = FINISHED.has(job.status);
  showPreview(job, running && job.has_preview);
  const out = $("#progress-result");
  if (job.status === "completed" && job.outputs && job.outputs.length) {
    out.replaceChildren(...shownOutputs(job).map((url, i) =>
      h("img", { src: url, alt: `Result ${i + 1}: ${job.prompt || ""}`, class: "result" })));
    const seeds = job.result && job.result.seeds;
    if (seeds && seeds.length) session.lastSeed = seeds[0];
  } else if (!FINISHED.has(job.status)) {
    out.replaceChildren();
  }
}

export function initGenerate() {
  initSize();
  initSeed();
  $("#gen-form").addEventListener("submit", (e) => { e.preventDefault(); generate(); });
  $("#cancel").addEventListener("click", () => cancelJob());
  for (const tab of document.querySelectorAll("#kind-tabs [role=tab]")) {
    tab.addEventListener("click", () => setKind(tab.dataset.kind));
  }
  on("job", (job) => { if (job.id === watching) render(job); });
  on("reuse", (values) => {
    if (values.kind && KINDS[values.kind]) setKind(values.kind);
    applyValues(values);
    location.hash = "#generate";
    toast("Settings applied to the form.");
  });
}

export const watchedJob = () => watching;
