// The native API (/api/...), as the browser calls it: same-origin credentials (the HttpOnly
// session cookie) and the X-Sdcpp-Client header the server's CSRF rule asks for.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const listeners = new Set();
export const onAuthRequired = (fn) => listeners.add(fn);

// quiet: a 401 is the caller's business (no login form), e.g. optional extras for guests
export async function api(path, { method = "GET", body, raw = false, signal, quiet = false } = {}) {
  const headers = { "X-Sdcpp-Client": "webui" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (raw) return res;
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = { message: text }; }
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    const e = new ApiError(res.status, err.code || "HTTP_" + res.status,
      err.message || (data && data.message) || res.statusText);
    if (res.status === 401 && !quiet && !path.startsWith("/api/auth/login")) listeners.forEach((fn) => fn(e));
    throw e;
  }
  return data;
}

// An output URL (signed when auth is on) with extra query parameters.
export function withQuery(url, params) {
  const u = new URL(url, location.origin);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.pathname + u.search;
}
