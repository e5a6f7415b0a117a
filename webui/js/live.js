// Live job updates: the /ws WebSocket, else Server-Sent Events (/api/events), else polling
// /api/queue/status. Every road feeds state.putJob; the queue list is loaded first, so the
// state survives a page reload (and a server restart: we reconnect and reload it).

import { api } from "./api.js";
import { emit, jobs, putJob } from "./state.js";

let mode = "none";
let pollTimer = null;
let socket = null;
let source = null;

export const liveMode = () => mode;

function setMode(next) {
  mode = next;
  emit("live", next);
}

export async function loadQueue() {
  const data = await api("/api/queue/status?limit=200");
  const queue = data.queue || {};
  for (const job of queue.jobs || []) putJob(job);
  emit("queue", queue);
  return queue;
}

// A job queued elsewhere (another tab, a script) has no job_update until it starts, but the
// queue's counts change: then the list is read again (at most every 500 ms).
let relist = null;
function queueChanged(data) {
  const known = [...jobs.values()].filter((j) => j.status === "queued").length;
  if (relist || typeof data.size !== "number" || data.size === known) return;
  relist = setTimeout(() => { relist = null; loadQueue().catch(() => {}); }, 500);
}

function handle(type, data) {
  if (type === "job_update") putJob(data);
  else if (type === "queue_update") { emit("queue", data); queueChanged(data); }
  else if (type === "system_update") emit("system", data);
}

function startPolling() {
  setMode("polling");
  clearInterval(pollTimer);
  pollTimer = setInterval(() => loadQueue().catch(() => {}), 1000);
}

function startSse() {
  if (!window.EventSource) return startPolling();
  source = new EventSource("/api/events", { withCredentials: true });
  let opened = false;
  source.onopen = () => { opened = true; setMode("sse"); };
  for (const type of ["job_update", "queue_update", "system_update"]) {
    source.addEventListener(type, (e) => handle(type, JSON.parse(e.data)));
  }
  source.onerror = () => {
    if (!opened) { source.close(); source = null; startPolling(); }
  };
}

function startWs(retries = 0) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  let opened = false;
  try {
    socket = new WebSocket(url);
  } catch {
    return startSse();
  }
  socket.onopen = () => {
    opened = true;
    setMode("websocket");
    loadQueue().catch(() => {}); // what happened while we were away
  };
  socket.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    handle(msg.type, msg.data || {});
  };
  socket.onclose = () => {
    socket = null;
    if (!opened) return startSse(); // never connected: the next road
    setMode("reconnecting");
    setTimeout(() => startWs(retries + 1), Math.min(1000 * 2 ** retries, 10000));
  };
}

export function stopLive() {
  clearInterval(pollTimer);
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  if (source) { source.close(); source = null; }
  setMode("none");
}

// ?live=sse or ?live=poll forces a road (tests, and proxies that block WebSockets).
export function startLive() {
  stopLive();
  const forced = new URLSearchParams(location.search).get("live");
  if (forced === "poll") startPolling();
  else if (forced === "sse") startSse();
  else startWs();
}
