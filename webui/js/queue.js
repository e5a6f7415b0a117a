// The Queue page: every job this user may see, live; cancel one, clear the queued ones.

import { api } from "./api.js";
import { $, fmtMs, h, toast } from "./dom.js";
import { cancelJob } from "./generate.js";
import { FINISHED, jobs, on } from "./state.js";

let pending = false;

function row(job) {
  const fraction = job.status === "completed" ? 1 : job.progress || 0;
  const detail = [];
  if (job.status === "queued" && job.position) detail.push(`#${job.position} in line`);
  if (job.status === "processing") {
    if (job.phase) detail.push(job.phase);
    if (job.total_steps) detail.push(`step ${job.current_step || 0}/${job.total_steps}`);
    if (job.time_remaining) detail.push(`ETA ${fmtMs(job.time_remaining)}`);
  }
  if (job.error) detail.push(job.error);
  return h("li", { class: `job status-${job.status}`, dataset: { job: job.id } },
    h("div", { class: "job-head" },
      h("span", { class: "badge" }, job.status),
      h("span", { class: "job-kind" }, job.type || ""),
      h("span", { class: "job-prompt" }, job.prompt || "")),
    h("progress", { max: 1, value: fraction, "aria-label": `Progress of job ${job.id}` }),
    h("div", { class: "job-foot" },
      h("span", {}, detail.join(" · ")),
      FINISHED.has(job.status) ? null
        : h("button", { type: "button", class: "small", onclick: () => cancelJob(job.id) }, "Cancel")));
}

function render() {
  pending = false;
  const list = $("#queue-list");
  const all = [...jobs.values()].sort((a, b) => (b.queued_time || 0) - (a.queued_time || 0));
  list.replaceChildren(...all.slice(0, 100).map(row));
  $("#queue-empty").hidden = all.length > 0;
  const active = all.filter((j) => !FINISHED.has(j.status)).length;
  $("#nav-queue-count").textContent = active ? String(active) : "";
}

function later() {
  if (!pending) { pending = true; requestAnimationFrame(render); }
}

export function initQueue() {
  on("job", later);
  on("job-removed", later);
  $("#queue-clear").addEventListener("click", async () => {
    try {
      const answer = await api("/api/queue/clear", { method: "POST" });
      toast(`${answer.cleared} queued job(s) cleared.`);
      for (const job of jobs.values()) if (job.status === "queued") job.status = "cancelled";
      later();
    } catch (e) {
      toast(e.message, "error");
    }
  });
}
