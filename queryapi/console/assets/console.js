// The Presence console: the online users of an app, refreshed every two
// seconds (GET /v1/apps/{app}/online), and one user's sessions, custom
// status and friends, kept live by a long-poll watch with a cursor
// (POST /v1/apps/{app}/status/watch). A pasted key or token stays in this
// tab's sessionStorage and goes as Authorization: Bearer.

const $ = (id) => document.getElementById(id);
const refreshMs = 2000;
let settings = { app: "chat", prefix: "", key: sessionStorage.getItem("presence.key") || "" };
let watched = null; // { user, abort }

function say(text) { $("live").textContent = text; }

export async function api(method, path, body, signal) {
  const headers = { "Content-Type": "application/json" };
  if (settings.key) headers["Authorization"] = "Bearer " + settings.key;
  const res = await fetch(path, { method, headers, body: body && JSON.stringify(body), signal });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error((data.error && data.error.message) || res.statusText);
    err.status = res.status;
    err.code = data.error && data.error.code;
    throw err;
  }
  return data;
}

const appPath = () => "/v1/apps/" + encodeURIComponent(settings.app);
const userPath = (u) => appPath() + "/users/" + encodeURIComponent(u);

export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(e, rest);
  Object.assign(e.dataset, dataset || {});
  for (const c of children) e.append(c);
  return e;
}

async function refreshOnline() {
  try {
    const q = new URLSearchParams({ prefix: settings.prefix, limit: "200" });
    const page = await api("GET", appPath() + "/online?" + q);
    const before = new Set([...$("online").children].map((li) => li.dataset.user));
    const now = new Set(page.users.map((u) => u.user));
    $("online").replaceChildren(...page.users.map((u) => el("li", { dataset: { user: u.user } },
      el("button", { type: "button", onclick: () => show(u.user) },
        el("span", { className: "dot", ariaHidden: "true" }), u.user + " (" + u.sessions + " session" + (u.sessions === 1 ? "" : "s") + ")"))));
    $("online-count").textContent = page.users.length + (page.truncated ? "+" : "");
    $("online-note").textContent = page.truncated ? "More users are online than listed: narrow with a prefix." : "";
    const came = [...now].filter((u) => !before.has(u)), left = [...before].filter((u) => !now.has(u));
    if (came.length || left.length) {
      say([came.length ? "online: " + came.join(", ") : "", left.length ? "offline: " + left.join(", ") : ""].filter(Boolean).join("; "));
    }
  } catch (err) {
    $("online-note").textContent = "Cannot list online users: " + err.message;
    $("online-note").className = "note error";
    return;
  }
  $("online-note").className = "note";
}

function renderStatus(st, friends) {
  const box = $("detail");
  if (!st) { box.replaceChildren(el("p", { className: "note" }, "Presence does not know this user.")); return; }
  const parts = [el("h3", { className: st.state }, el("span", { className: "dot", ariaHidden: "true" }), st.user + " is " + st.state)];
  if (st.custom) parts.push(el("p", {}, "Custom status: " + [st.custom.status, st.custom.text].filter(Boolean).join(" — ")));
  if (st.last_seen) parts.push(el("p", {}, "Last seen " + new Date(st.last_seen).toLocaleString()));
  if (st.sessions && st.sessions.length) {
    parts.push(el("table", {},
      el("caption", {}, "Sessions"),
      el("thead", {}, el("tr", {}, ...["Session", "Device", "Device id", "Gateway", "Since", "Activity"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...st.sessions.map((s) => el("tr", {}, ...[s.session, s.device, s.device_id, s.gateway,
        new Date(s.connected_at).toLocaleTimeString(), s.activity].map((v) => el("td", {}, String(v ?? ""))))))));
  }
  if (friends) {
    parts.push(el("h3", {}, "Friends"));
    parts.push(friends.length
      ? el("ul", {}, ...friends.map((f) => el("li", { className: f.state }, el("span", { className: "dot", ariaHidden: "true" }), f.user + " — " + f.state)))
      : el("p", { className: "note" }, "No friend with a status."));
  }
  box.replaceChildren(...parts);
}

async function friendsOf(user) {
  try { return (await api("GET", userPath(user) + "/friends/status")).results; } catch { return null; }
}

// show looks a user up, then watches it until another is shown.
async function show(user) {
  if (watched) watched.abort.abort();
  const abort = new AbortController();
  watched = { user, abort };
  $("user").value = user;
  try {
    const first = await api("POST", appPath() + "/status/watch", { users: [user], cursor: null, timeout_ms: 0 }, abort.signal);
    renderStatus(first.results[0], await friendsOf(user));
    let cursor = first.cursor;
    while (!abort.signal.aborted) {
      const next = await api("POST", appPath() + "/status/watch", { users: [user], cursor, timeout_ms: 25000 }, abort.signal);
      cursor = next.cursor;
      if (next.changes.length) {
        renderStatus(next.changes[0], await friendsOf(user));
        say(user + " is " + next.changes[0].state);
      }
    }
  } catch (err) {
    if (abort.signal.aborted) return;
    if (err.status === 410) { show(user); return; } // cursor expired: start again
    $("detail").replaceChildren(el("p", { className: "note error" }, "Cannot show " + user + ": " + err.message));
  }
}

$("key").value = settings.key;
$("settings").addEventListener("submit", (e) => {
  e.preventDefault();
  settings = { app: $("app").value.trim() || "chat", prefix: $("prefix").value, key: $("key").value.trim() };
  if (settings.key) sessionStorage.setItem("presence.key", settings.key); else sessionStorage.removeItem("presence.key");
  say("Showing app " + settings.app);
  refreshOnline();
});
$("lookup").addEventListener("submit", (e) => { e.preventDefault(); const u = $("user").value.trim(); if (u) show(u); });
refreshOnline();
setInterval(refreshOnline, refreshMs);
