// Shared state: the jobs this page knows (by id) and a tiny event hub between modules.

export const jobs = new Map();
const hub = new EventTarget();

export function on(type, fn) {
  hub.addEventListener(type, (e) => fn(e.detail));
}

export function emit(type, detail) {
  hub.dispatchEvent(new CustomEvent(type, { detail }));
}

export const FINISHED = new Set(["completed", "failed", "cancelled"]);

// Merge a job view (from the queue list, an event or a poll) and tell who cares.
export function putJob(view) {
  if (!view || !view.id) return;
  const old = jobs.get(view.id) || {};
  const merged = { ...old, ...view };
  jobs.set(view.id, merged);
  emit("job", merged);
}

// What a person looks at of a job's outputs: a video job writes its animation first, then every
// frame as a PNG (for scripts); the result panel and the gallery show the animation alone.
export const shownOutputs = (job) => (job.type === "video" ? (job.outputs || []).slice(0, 1) : job.outputs || []);

export function dropJob(id) {
  jobs.delete(id);
  emit("job-removed", id);
}

export const session = { user: null, authEnabled: false, lastSeed: null };
