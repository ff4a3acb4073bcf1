// Fetch wrapper: the browser authenticates with the HttpOnly session cookie; no token in JS storage.

export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function getJSON(path) {
  const res = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (res.status === 401) throw new AuthError("Unauthorized");
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const msg = data && typeof data.error === "string" ? data.error : "HTTP " + res.status;
    throw new ApiError(res.status, msg);
  }
  return data;
}

export async function login(token) {
  const res = await fetch("/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
  if (res.ok) return true;
  let msg = "Wrong token";
  try {
    const data = await res.json();
    if (res.status !== 401 && data && typeof data.error === "string") msg = data.error;
  } catch (e) { /* keep default */ }
  throw new ApiError(res.status, msg);
}

export async function logout() {
  await fetch("/logout", { method: "POST", credentials: "same-origin" });
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "" && v !== false) u.set(k, String(v));
  }
  const s = u.toString();
  return s ? "?" + s : "";
}

export const enc = encodeURIComponent;
