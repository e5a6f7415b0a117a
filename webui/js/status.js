// The status bar: live road, queue depth, worker state, loaded models.

import { api } from "./api.js";
import { $, fmtBytes } from "./dom.js";
import { on } from "./state.js";

let live = "none";
let timer = null;

async function refresh() {
  try {
    const [s, system] = await Promise.all([
      api("/api/status"), api("/api/system", { quiet: true }).catch(() => null), // /api/system: users only
    ]);
    const memory = system && system.system && system.system.memory;
    const q = s.generation_queue || {};
    const parts = [
      `worker ${s.worker ? s.worker.state : "?"}`,
      `queue ${q.queue_size ?? 0}`,
      `running ${q.active_generations ?? 0}`,
      `models ${s.models ? `${s.models.loaded_count} loaded / ${s.models.available_count}` : "?"}`,
      `updates: ${live}`,
    ];
    if (memory) parts.splice(4, 0, `memory ${fmtBytes(memory.total - memory.available)} / ${fmtBytes(memory.total)}`);
    $("#status-text").textContent = parts.join(" · ");
  } catch {
    $("#status-text").textContent = `server unreachable · updates: ${live}`;
  }
}

export function initStatus() {
  on("live", (mode) => { live = mode; refresh(); });
  on("queue", () => { clearTimeout(timer); timer = setTimeout(refresh, 200); });
  refresh();
  setInterval(refresh, 10000);
}
