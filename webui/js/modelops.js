// Admin model operations on the Models page: upload a model file (POST /api/models/upload, the
// body is the file itself, with upload progress) and convert one to GGUF (POST
// /api/models/convert: a queued job, followed to its end with its tensors-done progress).

import { api } from "./api.js";
import { $, fmtBytes, h, toast } from "./dom.js";
import { FINISHED, jobs, on } from "./state.js";

let onChanged = async () => {};
let converting = null; // {id, model}

function uploadFile(file, type, subfolder, overwrite) {
  // XMLHttpRequest, not fetch: only it reports upload progress
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const query = new URLSearchParams({ type, filename: file.name });
    if (subfolder) query.set("subfolder", subfolder);
    if (overwrite) query.set("overwrite", "true");
    xhr.open("POST", `/api/models/upload?${query}`);
    xhr.setRequestHeader("X-Sdcpp-Client", "webui");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.withCredentials = true;
    const bar = $("#upload-progress");
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
    xhr.onload = () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new Error((data.error && data.error.message) || `${xhr.status} ${xhr.statusText}`));
    };
    xhr.onerror = () => reject(new Error("the upload failed (connection)"));
    xhr.send(file);
  });
}

async function upload(e) {
  e.preventDefault();
  const file = $("#upload-file").files[0];
  const type = $("#upload-type").value;
  if (!file || !type) { toast("Choose a type and a file first.", "error"); return; }
  const status = $("#upload-status");
  status.textContent = `Uploading ${file.name} (${fmtBytes(file.size)})…`;
  try {
    const subfolder = $("#upload-subfolder-field").hidden ? "" : $("#upload-subfolder").value;
    const entry = await uploadFile(file, type, subfolder, $("#upload-overwrite").checked);
    status.textContent = `Uploaded: ${(entry.model && entry.model.id) || entry.id || file.name}`;
    $("#upload-form").reset();
    showTarget();
    await onChanged();
  } catch (err) {
    status.textContent = "";
    toast(err.message, "error");
  } finally {
    $("#upload-progress").hidden = true;
  }
}

export function openConvert(model) {
  converting = { id: null, model };
  $("#convert-title").textContent = `Convert ${model.name} to GGUF`;
  $("#convert-output").value = "";
  $("#convert-output").placeholder = `${model.name}-${$("#convert-type").value || "q8_0"}.gguf`;
  $("#convert-status").textContent = "";
  $("#convert-progress").value = 0;
  $("#convert-progress").hidden = true;
  $("#convert-start").disabled = false;
  $("#convert-dialog").showModal();
}

function renderConvert(job) {
  const bar = $("#convert-progress");
  bar.hidden = false;
  bar.value = job.status === "completed" ? 1 : job.progress || 0;
  const parts = [job.status];
  if (job.total_steps) parts.push(`${job.current_step || 0}/${job.total_steps} tensors`);
  if (job.error) parts.push(job.error);
  $("#convert-status").textContent = parts.join(" · ");
  if (FINISHED.has(job.status)) {
    $("#convert-start").disabled = false;
    if (job.status === "completed") onChanged();
  }
}

async function follow(id) {
  // live events move the bar when they come; a poll makes sure the end is seen without them
  while (converting && converting.id === id) {
    const job = await api(`/api/queue/job/${encodeURIComponent(id)}`).catch(() => null);
    if (job && converting && converting.id === id) renderConvert({ ...jobs.get(id), ...job });
    if (!job || FINISHED.has(job.status)) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function startConvert(e) {
  e.preventDefault();
  if (!converting) return;
  const body = { model_name: converting.model.id, quantization_type: $("#convert-type").value };
  const output = $("#convert-output").value.trim();
  if (output) body.output_path = output;
  $("#convert-start").disabled = true;
  try {
    const answer = await api("/api/models/convert", { method: "POST", body });
    converting.id = answer.job_id;
    $("#convert-status").textContent = `queued: ${answer.output_path || answer.output || ""}`;
    follow(answer.job_id);
  } catch (err) {
    $("#convert-start").disabled = false;
    toast(err.message, "error");
  }
}

let targets = {}; // type -> {folder, subfolders, extensions} (GET /api/models/upload-targets)

// the picked type's subfolders (text encoders: clip_l, t5xxl, ...) and the files it takes
function showTarget() {
  const target = targets[$("#upload-type").value];
  const subs = (target && target.subfolders) || [];
  $("#upload-subfolder").replaceChildren(h("option", { value: "" }, target ? `${target.folder}/` : "(none)"),
    ...subs.map((s) => h("option", { value: s }, `${target.folder}/${s}/`)));
  $("#upload-subfolder-field").hidden = subs.length === 0;
  $("#upload-file").accept = target ? target.extensions.join(",") : "";
}

async function loadTargets() {
  try {
    const data = await api("/api/models/upload-targets", { quiet: true });
    for (const t of data.targets || []) {
      targets[t.type] = t;
      $("#upload-type").append(h("option", { value: t.type }, `${t.type} (${t.folder}/)`));
    }
  } catch { /* the form stays without types; the API refuses what it cannot take anyway */ }
  $("#upload-type").addEventListener("change", showTarget);
}

export async function initModelOps(changed) {
  onChanged = changed;
  $("#upload-form").addEventListener("submit", upload);
  $("#convert-form").addEventListener("submit", startConvert);
  $("#convert-close").addEventListener("click", () => { converting = null; $("#convert-dialog").close(); });
  $("#convert-dialog").addEventListener("close", () => { converting = null; });
  on("job", (job) => { if (converting && job.id === converting.id) renderConvert(job); });
  await loadTargets();
  try {
    const q = await api("/api/models/quantizations", { quiet: true });
    for (const t of q.quantization_types || []) {
      $("#convert-type").append(h("option", { value: t, selected: t === q.default }, t));
    }
  } catch { /* older server: the dialog stays without choices and the API says why */ }
}
