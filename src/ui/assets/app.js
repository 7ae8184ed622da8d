// playgate web interface: a small single-page app over the admin API.
// No inline scripts or styles (strict CSP); every value from the server is
// inserted as text, never as HTML. Times are shown in the browser's zone.
"use strict";

const state = { me: null, csrf: "", timer: null };
const PAGE = 25;

// ---------- DOM helpers ----------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
// replaceChildren, leaving out absent parts (null, false) instead of printing them.
function put(el, ...children) {
  el.replaceChildren(...children.flat().filter(c => c !== null && c !== undefined && c !== false));
}
// put() for a periodic refresh: the control that had keyboard focus inside
// `el` is found again by its data-key, so focus does not fall back to the
// page body every few seconds. When it is gone, `el` (tabindex -1) keeps it.
function refresh(el, ...children) {
  const active = document.activeElement;
  if (!active || !el.contains(active)) { put(el, ...children); return; }
  const key = active.dataset.key;
  put(el, ...children);
  const again = key && Array.from(el.querySelectorAll("[data-key]")).find(x => x.dataset.key === key);
  (again || el).focus({ preventScroll: true });
}
const $ = (sel, root) => (root || document).querySelector(sel);
const main = () => $("#main");
const isAdmin = () => state.me && state.me.kind === "admin";

function toast(message) {
  const el = $("#toast");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 3500);
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}
function fmtDuration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  const d = Math.floor(seconds / 86400), hh = Math.floor(seconds % 86400 / 3600),
    mm = Math.floor(seconds % 3600 / 60), ss = seconds % 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}
function fmtHours(seconds) { return (seconds / 3600).toFixed(seconds < 360 ? 2 : 1); }
// <input type=datetime-local> value (local zone) <-> ISO
function toLocalInput(date) {
  const pad = n => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
function fromLocalInput(value) { return value ? new Date(value).toISOString() : null; }

// ---------- API ----------
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status; this.field = body && body.field;
    this.users = (body && body.users) || [];
  }
}
async function api(method, path, body) {
  const headers = { "Accept": "application/json", "X-Playgate-CSRF": state.csrf };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  let response;
  try { response = await fetch(path, init); }
  catch (e) { throw new ApiError(0, { error: "the server cannot be reached" }); }
  if (response.status === 401 && path !== "/api/v1/login") { signedOut("Your session has ended; please sign in again."); throw new ApiError(401, { error: "signed out" }); }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
const enc = encodeURIComponent;
function query(params) {
  const parts = Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)
    .map(([k, v]) => `${enc(k)}=${enc(v)}`);
  return parts.length ? "?" + parts.join("&") : "";
}

// ---------- dialogs ----------
function confirmDialog(message, action) {
  return new Promise(resolve => {
    const cancel = h("button", { type: "button", "data-testid": "confirm-no", onclick: () => { dialog.close(); resolve(false); } }, "Cancel");
    const dialog = h("dialog", { "data-testid": "confirm" },
      h("p", { text: message }),
      h("div", { class: "form-actions" },
        h("button", { type: "button", class: "danger", "data-testid": "confirm-yes", onclick: () => { dialog.close(); resolve(true); } }, action),
        cancel));
    dialog.addEventListener("close", () => { dialog.remove(); resolve(false); });
    document.body.append(dialog);
    dialog.showModal();
    // showModal focuses the first button, the destructive one, where a
    // stray Enter would act: the safe choice has the focus instead.
    cancel.focus();
  });
}
// A refused write, in a banner that stays until dismissed: the API's reason,
// and the users it names linked to their editor.
function showRefusal(slot, e) {
  const close = h("button", { type: "button", class: "small", onclick: () => put(slot) }, "Dismiss");
  put(slot, h("div", { class: "banner error refusal", role: "alert", "data-testid": "refusal" },
    h("p", { text: e.message }),
    e.users.length ? h("p", {}, "Edit: ", e.users.flatMap((login, i) => [i ? ", " : null,
      h("a", { href: `#/users?edit=${enc(login)}`, "data-testid": "edit-user" }, login)])) : null,
    close));
}
function formDialog(title, content, onSubmit) {
  const errorBox = h("div", { class: "banner error", hidden: true, role: "alert" });
  const form = h("form", { novalidate: true }, h("h2", { text: title }), errorBox, content,
    h("div", { class: "form-actions" },
      h("button", { type: "submit", class: "primary", "data-testid": "save" }, "Save"),
      h("button", { type: "button", onclick: () => dialog.close() }, "Cancel")));
  const dialog = h("dialog", {}, form);
  form.addEventListener("submit", async event => {
    event.preventDefault();
    errorBox.hidden = true;
    form.querySelectorAll(".error[data-for]").forEach(e => { e.textContent = ""; });
    try {
      await onSubmit(form);
      dialog.close();
    } catch (e) {
      const slot = e.field && form.querySelector(`.error[data-for="${CSS.escape(e.field)}"]`);
      if (slot) { slot.textContent = e.message; const input = form.querySelector(`[name="${CSS.escape(e.field)}"]`); if (input) input.focus(); }
      else { errorBox.textContent = e.message; errorBox.hidden = false; }
    }
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}
function field(name, labelText, input, hint) {
  input.name = name; input.id = "f-" + name;
  return h("div", { class: input.dataset.wide ? "wide" : "" },
    h("label", { for: input.id, text: labelText }), input,
    hint ? h("div", { class: "muted", text: hint }) : null,
    h("div", { class: "error", "data-for": name, "aria-live": "polite" }));
}

// ---------- tables ----------
function table(columns, rows, emptyText) {
  if (!rows.length) return h("div", { class: "panel empty", text: emptyText });
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map(c => h("th", { class: c.cls || "", scope: "col", text: c.title })))),
    h("tbody", {}, rows.map(row => h("tr", {}, columns.map(c => {
      const value = c.render(row);
      return h("td", { class: c.cls || "" }, value);
    }))))));
}
function pager(total, offset, go) {
  const last = Math.max(0, Math.ceil(total / PAGE) - 1), page = Math.floor(offset / PAGE);
  return h("div", { class: "pager" },
    h("span", { class: "muted", text: total ? `${offset + 1}–${Math.min(total, offset + PAGE)} of ${total}` : "" }),
    h("button", { type: "button", class: "small", disabled: page <= 0, onclick: () => go(offset - PAGE) }, "‹ Previous"),
    h("button", { type: "button", class: "small", disabled: page >= last, onclick: () => go(offset + PAGE) }, "Next ›"));
}
function badge(text, cls) { return h("span", { class: "badge " + (cls || "") , text }); }
// A limit's input (max_sessions, max_devices, max_viewers): empty = none.
function limitInput(value) {
  return h("input", { type: "number", min: "0", step: "1", inputmode: "numeric", value: value === null || value === undefined ? "" : String(value) });
}
// Its value for the API: null when empty. Text the browser cannot read as a
// number is refused here, not sent as "empty", which would clear the limit.
function limitValue(form, name) {
  const input = form.elements[name];
  if (input.validity.badInput) throw new ApiError(422, { field: name, error: "Enter a whole number (0 or more), or leave it empty." });
  return input.value.trim() === "" ? null : Number(input.value);
}
function fmtLimit(value, none) { return value === null || value === undefined ? h("span", { class: "muted", text: none }) : String(value); }
function errorState(e) { return h("div", { class: "banner error", role: "alert", text: "Could not load: " + e.message }); }

// ---------- sign-in ----------
function signedOut(message) {
  state.me = null; state.csrf = "";
  document.querySelectorAll("dialog[open]").forEach(d => d.close());
  stopTimer();
  $("#top").hidden = true;
  renderLogin(message);
}
function renderLogin(message) {
  const error = h("div", { class: "banner error", role: "alert", id: "login-error", hidden: !message, text: message || "" });
  const login = h("input", { id: "login", name: "login", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "panel login-box", id: "login-form" },
    h("h1", { text: "playgate" }), error,
    h("div", { class: "field" }, h("label", { for: "login", text: "Login" }), login),
    h("div", { class: "field" }, h("label", { for: "password", text: "Password" }), password),
    h("button", { type: "submit", class: "primary", id: "login-submit" }, "Sign in"));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    error.hidden = true;
    try {
      const me = await api("POST", "/api/v1/login", { login: login.value, password: password.value });
      signedIn(me);
    } catch (e) {
      error.textContent = e.status === 401 ? "Wrong login or password." : e.message;
      error.hidden = false;
      password.value = ""; password.focus();
    }
  });
  put(main(), form);
  login.focus();
}
function signedIn(me) {
  state.me = me; state.csrf = me.csrf;
  $("#top").hidden = false;
  put($("#who"), document.createTextNode(me.login), h("span", { class: "role", text: me.kind }));
  document.body.dataset.role = me.kind;
  if (!location.hash || location.hash === "#/") location.hash = "#/users";
  route();
}

// ---------- router ----------
const pages = {};
function stopTimer() { if (state.timer) { clearInterval(state.timer); state.timer = null; } }
function route() {
  if (!state.me) return;
  stopTimer();
  document.querySelectorAll("dialog[open]").forEach(d => d.close());
  const name = (location.hash.replace(/^#\//, "").split("?")[0]) || "users";
  const page = pages[name] || pages.users;
  document.querySelectorAll("#nav a").forEach(a => a.classList.toggle("active", a.dataset.page === name));
  document.querySelectorAll("#nav a").forEach(a => { if (a.dataset.page === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current"); });
  put(main(), h("p", { class: "muted", text: "Loading…" }));
  page();
}
window.addEventListener("hashchange", route);

// ---------- users ----------
pages.users = function () {
  let q = "", offset = 0;
  const search = h("input", { type: "search", id: "user-search", placeholder: "Search login or comment", "aria-label": "Search users" });
  const list = h("div", {});
  const title = h("h1", { text: "Users" });
  const toolbar = h("div", { class: "toolbar" }, h("div", { class: "grow" }, search),
    isAdmin() ? h("button", { type: "button", class: "primary", id: "new-user", onclick: () => userForm(null, load) }, "New user") : null);
  let debounce;
  search.addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(() => { q = search.value.trim(); offset = 0; load(); }, 250); });
  const notice = h("div", { id: "users-notice" });
  put(main(), title, toolbar, notice, list);
  // #/users?edit=<login>: straight into that user's editor (links of a refusal).
  const edit = new URLSearchParams(location.hash.split("?")[1] || "").get("edit");
  if (edit && isAdmin()) {
    history.replaceState(null, "", "#/users");
    api("GET", `/api/v1/users/${enc(edit)}`).then(u => userForm(u, load)).catch(e => { if (e.status !== 401) showRefusal(notice, e); });
  }

  async function load() {
    try {
      const [page, sessions] = await Promise.all([
        api("GET", "/api/v1/users" + query({ q, limit: PAGE, offset })),
        api("GET", "/api/v1/sessions?limit=1000").catch(() => ({ items: [] }))]);
      const active = {};
      for (const s of sessions.items) if (s.user) active[s.user] = (active[s.user] || 0) + 1;
      const columns = [
        { title: "Login", render: u => h("strong", { text: u.login }) },
        { title: "Kind", render: u => badge(u.kind, u.kind) },
        { title: "Enabled", render: u => u.enabled ? badge("enabled", "on") : badge("disabled", "off") },
        { title: "Expires", cls: "hide-narrow", render: u => fmtTime(u.expires_at) },
        { title: "Limit", cls: "num hide-narrow", render: u => u.max_sessions === null ? "∞" : String(u.max_sessions) },
        { title: "Devices", cls: "num hide-narrow", render: u => h("span", { title: "Devices at once", text: u.max_devices === null || u.max_devices === undefined ? "∞" : String(u.max_devices) }) },
        { title: "Packages", cls: "hide-narrow", render: u => u.packages.length ? u.packages.join(", ") : h("span", { class: "muted", text: "all streams" }) },
        { title: "Active", cls: "num", render: u => String(active[u.login] || 0) },
        { title: "", cls: "actions", render: u => userActions(u, load, notice) }];
      put(list, 
        table(columns, page.items, q ? "No user matches this search." : "No users yet."),
        pager(page.total, offset, next => { offset = Math.max(0, next); load(); }));
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
};
function userActions(u, reload, notice) {
  const tokens = h("button", { type: "button", class: "small", "data-testid": "tokens", onclick: () => tokensDialog(u.login) }, `Tokens (${u.tokens})`);
  // Observers have no editor, where admins see the devices: a dialog of their own.
  if (!isAdmin()) return [h("button", { type: "button", class: "small", "data-testid": "devices", onclick: () => devicesDialog(u) }, "Devices"), tokens];
  const self = state.me && u.login === state.me.login;
  const refused = e => { if (e.status === 409) showRefusal(notice, e); else if (e.status !== 401) toast(e.message); };
  return [
    h("button", { type: "button", class: "small", "data-testid": "edit", onclick: () => userForm(u, reload) }, "Edit"),
    h("button", { type: "button", class: "small", "data-testid": "toggle", onclick: async () => {
      // Disabling is as drastic as deleting (no playing, no signing in), so it is confirmed the same way.
      if (u.enabled && !await confirmDialog(self
        ? `Disable your own account ${u.login}? You are signed out at once, and only another admin can enable it again.`
        : `Disable ${u.login}? They can no longer play or sign in, and their web sessions end.`, "Disable")) return;
      try { await api("PATCH", `/api/v1/users/${enc(u.login)}`, { enabled: !u.enabled }); put(notice); toast(`${u.login} ${u.enabled ? "disabled" : "enabled"}`); reload(); }
      catch (e) { refused(e); }
    } }, u.enabled ? "Disable" : "Enable"),
    tokens,
    h("button", { type: "button", class: "small danger", onclick: async () => {
      if (!await confirmDialog(self
        ? `Delete your own account ${u.login}? You are signed out at once.`
        : `Delete user ${u.login}? Their sessions end and their tokens stop working.`, "Delete")) return;
      try { await api("DELETE", `/api/v1/users/${enc(u.login)}`); put(notice); toast(`${u.login} deleted`); reload(); }
      catch (e) { refused(e); }
    } }, "Delete")];
}
// The packages of a user: one checkbox per package, and "every stream" as a
// choice of its own. With no package a user may watch everything, so that
// is never what unchecking the last box silently means: saving with nothing
// chosen is refused. `names` null: the list could not be loaded.
function packagePicker(names, current) {
  const every = h("input", { type: "checkbox", id: "f-every-stream", checked: !!current && current.length === 0 });
  const boxes = (names || []).map(name => h("input", { type: "checkbox", name: "packages", value: name, checked: !!current && current.includes(name) }));
  every.addEventListener("change", () => { if (every.checked) boxes.forEach(b => { b.checked = false; }); });
  for (const box of boxes) box.addEventListener("change", () => { if (box.checked) every.checked = false; });
  const el = h("fieldset", { class: "wide packages", id: "f-packages" },
    h("legend", { text: "Packages (what the user may watch)" }),
    names === null ? h("p", { class: "muted", text: "The packages could not be loaded; they are left as they are." })
      : h("div", { class: "choices" }, boxes.length ? boxes.map(b => h("label", { class: "check" }, b, b.value))
        : h("p", { class: "muted", text: "No packages yet: create them under Packages to limit what users may watch." })),
    names === null ? null : h("label", { class: "check every" }, every, "Every stream (no package)"),
    h("div", { class: "error", "data-for": "packages", "aria-live": "polite" }));
  // The chosen names ([] = every stream), undefined = leave unchanged.
  function value() {
    if (names === null) {
      if (current) return undefined;
      throw new ApiError(422, { field: "packages", error: "The packages could not be loaded; close this form and try again." });
    }
    if (every.checked) return [];
    const chosen = boxes.filter(b => b.checked).map(b => b.value);
    if (!chosen.length) throw new ApiError(422, { field: "packages", error: "Choose at least one package, or \u201cEvery stream (no package)\u201d to let this user watch everything." });
    return chosen;
  }
  return { el, value };
}
async function userForm(user, reload) {
  let packages = null;
  try { packages = (await api("GET", "/api/v1/packages?limit=1000")).items.map(p => p.name); } catch (e) { if (e.status === 401) return; }
  const v = user || { login: "", kind: "user", comment: "", ips: [], stb: "", expires_at: null, max_sessions: null, max_devices: null, packages: [], enabled: true };
  const kind = h("select", {}, ["user", "observer", "admin"].map(k => h("option", { value: k, selected: v.kind === k }, k)));
  // A new user starts with nothing chosen: every stream has to be asked for.
  const picker = packagePicker(packages, user ? user.packages : null);
  const generate = h("input", { type: "checkbox", id: "f-generate" });
  const enabled = h("input", { type: "checkbox", checked: v.enabled });
  const content = h("div", { class: "grid" },
    field("login", "Login", h("input", { value: v.login, required: true, autocomplete: "off" })),
    field("password", user ? "New password (empty: unchanged)" : "Password (optional)", h("input", { type: "password", autocomplete: "new-password" })),
    field("kind", "Kind", kind),
    field("max_sessions", "Concurrent sessions (empty: unlimited)", limitInput(v.max_sessions)),
    field("max_devices", "Devices at once (empty: unlimited)", limitInput(v.max_devices)),
    field("expires_at", "Expires (empty: never)", h("input", { type: "datetime-local", value: v.expires_at ? toLocalInput(new Date(v.expires_at)) : "" })),
    field("stb", "STB", h("input", { value: v.stb })),
    field("ips", "Bound IPs / networks (comma separated)", h("input", { value: v.ips.join(", ") })),
    picker.el,
    field("comment", "Comment", h("input", { value: v.comment, "data-wide": "1" })),
    h("div", {}, h("label", { for: "f-enabled" }, enabled, " Enabled")),
    user ? null : h("div", {}, h("label", { for: "f-generate" }, generate, " Generate a token")),
    user ? devicesView(user) : null);
  enabled.id = "f-enabled";
  formDialog(user ? `Edit ${user.login}` : "New user", content, async form => {
    const val = name => form.elements[name].value.trim();
    const body = {
      login: val("login"), kind: kind.value, comment: val("comment"), stb: val("stb"),
      ips: val("ips") ? val("ips").split(",").map(s => s.trim()).filter(Boolean) : [],
      max_sessions: limitValue(form, "max_sessions"),
      max_devices: limitValue(form, "max_devices"),
      expires_at: fromLocalInput(val("expires_at")),
      packages: picker.value(),
      enabled: enabled.checked };
    const password = form.elements.password.value;
    if (password) body.password = password;
    else if (!user) body.password = null;
    if (!user && generate.checked) body.token = true;
    const answer = user ? await api("PATCH", `/api/v1/users/${enc(user.login)}`, body)
      : await api("POST", "/api/v1/users", body);
    toast(user ? `${answer.login} saved` : `${answer.login} created`);
    reload();
    if (answer.token) setTimeout(() => showSecret(answer.login, answer.token), 0);
  });
}
// A user's devices now: their active sessions grouped by `device` (the id
// the streamer or caller sent, else "<client ip> <user agent>"), each with
// its streams and when it was last seen. Loaded once, when shown.
function devicesView(user) {
  const body = h("div", {}, h("p", { class: "muted", text: "Loading devices…" }));
  const el = h("section", { class: "wide devices", "data-testid": "user-devices", "aria-label": `Devices of ${user.login}` },
    h("h3", { text: "Devices now" }), body);
  (async () => {
    try {
      const page = await api("GET", "/api/v1/sessions" + query({ user: user.login, limit: 1000 }));
      const byDevice = new Map();
      for (const s of page.items) {
        const key = s.device || "";
        const d = byDevice.get(key) || { device: key, streams: [], ips: [], last: "" };
        if (!d.streams.includes(s.stream)) d.streams.push(s.stream);
        if (!d.ips.includes(s.client_ip)) d.ips.push(s.client_ip);
        if (s.last_seen_at > d.last) d.last = s.last_seen_at;
        byDevice.set(key, d);
      }
      const devices = Array.from(byDevice.values()).sort((a, b) => (a.last < b.last ? 1 : a.last > b.last ? -1 : 0));
      const max = user.max_devices === null || user.max_devices === undefined ? "unlimited" : String(user.max_devices);
      put(body,
        h("p", { class: "muted", text: `${devices.length} ${devices.length === 1 ? "device" : "devices"} in ${page.total} active ${page.total === 1 ? "session" : "sessions"}; devices at once: ${max}.` }),
        devices.length ? table([
          { title: "Device", render: d => d.device ? h("span", { class: "device", text: d.device }) : h("span", { class: "muted", text: "—" }) },
          { title: "Streams", render: d => d.streams.join(", ") },
          { title: "From", cls: "hide-narrow", render: d => d.ips.join(", ") },
          { title: "Last seen", render: d => fmtTime(d.last) }], devices, "") : null,
        page.total > page.items.length ? h("p", { class: "muted", text: `Counted from the first ${page.items.length} of ${page.total} sessions.` }) : null);
    } catch (e) { if (e.status !== 401) put(body, errorState(e)); }
  })();
  return el;
}
function devicesDialog(user) {
  const dialog = h("dialog", {}, h("h2", { text: `Devices of ${user.login}` }), devicesView(user),
    h("div", { class: "form-actions" }, h("button", { type: "button", id: "close-devices", onclick: () => dialog.close() }, "Close")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}
function playbackUrl(token) {
  return `https://streamer.example.com/STREAM/index.m3u8?token=${token}`;
}
function showSecret(login, token) {
  const copy = h("button", { type: "button", class: "small", id: "copy-token", onclick: async () => {
    try { await navigator.clipboard.writeText(token); toast("Token copied"); }
    catch (e) { const r = document.createRange(); r.selectNodeContents(code); const s = getSelection(); s.removeAllRanges(); s.addRange(r); toast("Press Ctrl+C to copy"); }
  } }, "Copy");
  const code = h("code", { id: "new-token", text: token });
  const dialog = h("dialog", { "data-testid": "secret" },
    h("h2", { text: `New token for ${login}` }),
    h("p", { class: "banner info", text: "This is the only time the token is shown. Copy it now." }),
    h("div", { class: "secret" }, code, copy),
    h("p", { class: "muted", text: "Playback URL example (any streamer hook takes token=):" }),
    h("code", { class: "block", text: playbackUrl(token) }),
    h("div", { class: "form-actions" }, h("button", { type: "button", class: "primary", onclick: () => dialog.close() }, "Done")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}
async function tokensDialog(login) {
  const body = h("div", {});
  const dialog = h("dialog", {}, h("h2", { text: `Tokens of ${login}` }), body,
    h("div", { class: "form-actions" },
      isAdmin() ? h("button", { type: "button", class: "primary", id: "create-token", onclick: async () => {
        try {
          const label = $("#token-label", dialog).value.trim();
          const created = await api("POST", `/api/v1/users/${enc(login)}/tokens`, label ? { label } : {});
          dialog.close(); route(); showSecret(login, created.token);
        } catch (e) { toast(e.message); }
      } }, "Create token") : null,
      h("button", { type: "button", id: "close-tokens", onclick: () => dialog.close() }, "Close")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  async function load() {
    try {
      const page = await api("GET", `/api/v1/users/${enc(login)}/tokens?limit=1000`);
      put(body, 
        table([
          { title: "Label", render: t => t.label || h("span", { class: "muted", text: "—" }) },
          { title: "Created", render: t => fmtTime(t.created_at) },
          { title: "Expires", render: t => fmtTime(t.expires_at) },
          { title: "", cls: "actions", render: t => isAdmin() ? h("button", { type: "button", class: "small danger", "data-testid": "revoke", onclick: async () => {
            if (!await confirmDialog("Revoke this token? Players using it are refused from now on.", "Revoke")) return;
            try { await api("DELETE", `/api/v1/users/${enc(login)}/tokens/${t.id}`); toast("Token revoked"); load(); } catch (e) { toast(e.message); }
          } }, "Revoke") : "" }], page.items, "No tokens."),
        isAdmin() ? h("div", { class: "toolbar" }, h("div", { class: "grow" },
          h("label", { for: "token-label", text: "Label of a new token (optional)" }), h("input", { id: "token-label" }))) : null);
    } catch (e) { if (e.status !== 401) put(body, errorState(e)); }
  }
  load();
}

// ---------- sessions: live, and the history (?state=ended) ----------
// Why a session ended (SPEC §1 `end_reason`), for the badge's tooltip and the
// legend; a reason not listed here is shown all the same, as it is.
const END_REASONS = {
  stopped: "the player or the streamer stopped it",
  timeout: "not refreshed in time (the usual end: close callbacks get lost)",
  kicked: "kicked by an admin, or the user was deleted",
  limit: "ended for a newer session of the user beyond max_sessions (kick_oldest)",
  replaced: "ended by the same device starting another channel (zapping)",
};
function endReason(reason) {
  if (!reason) return h("span", { class: "muted", text: "—" });
  const why = Object.prototype.hasOwnProperty.call(END_REASONS, reason) ? END_REASONS[reason] : null;
  return h("span", { class: "badge reason", title: why, "data-reason": reason, text: reason });
}
function reasonLegend() {
  return h("dl", { class: "legend", "data-testid": "end-reasons" },
    Object.entries(END_REASONS).flatMap(([reason, why]) => [h("dt", {}, endReason(reason)), h("dd", { text: why })]));
}
// The device a session records: the id the streamer or caller sent, else
// "<client ip> <user agent>".
function deviceCell(s) {
  return s.device ? h("span", { class: "device", text: s.device }) : h("span", { class: "muted", text: "—" });
}
pages.sessions = function () {
  const ended = new URLSearchParams(location.hash.split("?")[1] || "").get("state") === "ended";
  let offset = 0;
  const user = h("input", { type: "search", id: "session-user", placeholder: "User", "aria-label": "Filter by user" });
  const stream = h("input", { type: "search", id: "session-stream", placeholder: "Stream", "aria-label": "Filter by stream" });
  const list = h("div", { tabindex: "-1" });
  const stamp = h("span", { class: "muted", id: "sessions-updated" });
  const view = (href, text, current, testid) => h("a", { href, class: current ? "active" : "", "aria-current": current ? "page" : null, "data-testid": testid }, text);
  put(main(), h("h1", { text: ended ? "Session history" : "Live sessions" }),
    h("div", { class: "views", role: "group", "aria-label": "Live sessions or history" },
      view("#/sessions", "Live", !ended, "view-live"), view("#/sessions?state=ended", "History", ended, "view-ended")),
    h("div", { class: "toolbar" }, h("div", { class: "grow" }, user), h("div", { class: "grow" }, stream), stamp), list);
  let debounce;
  for (const input of [user, stream]) input.addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(() => { offset = 0; load(); }, 250); });
  const who = { title: "User", render: s => s.user ? h("strong", { text: s.user }) : h("span", { class: "muted", text: "anonymous" }) };
  async function loadLive() {
    const page = await api("GET", "/api/v1/sessions" + query({ user: user.value.trim(), stream: stream.value.trim(), limit: 500 }));
    const now = Date.now();
    refresh(list, table([
      who,
      { title: "Stream", render: s => s.stream },
      { title: "Device", render: deviceCell },
      { title: "From", render: s => s.client_ip },
      { title: "Streamer", cls: "hide-narrow", render: s => `${s.streamer || "—"} (${s.dialect})` },
      { title: "Protocol", cls: "hide-narrow", render: s => s.protocol || "—" },
      { title: "For", cls: "num", render: s => h("span", { title: "since " + fmtTime(s.started_at), text: fmtDuration((now - new Date(s.started_at)) / 1000) }) },
      { title: "", cls: "actions", render: s => isAdmin() ? h("button", { type: "button", class: "small danger", "data-testid": "kick", "data-key": "kick " + s.id, onclick: async () => {
        if (!await confirmDialog(`Kick ${s.user || "this viewer"} off ${s.stream}?`, "Kick")) return;
        try { await api("DELETE", `/api/v1/sessions/${s.id}`); toast("Session kicked"); load(); } catch (e) { toast(e.message); }
      } }, "Kick") : "" }], page.items, "Nobody is watching right now."),
      page.total > page.items.length ? h("p", { class: "muted", text: `Showing ${page.items.length} of ${page.total}.` }) : null);
  }
  async function loadEnded() {
    const page = await api("GET", "/api/v1/sessions" + query({ state: "ended", user: user.value.trim(), stream: stream.value.trim(), limit: PAGE, offset }));
    put(list, table([
      who,
      { title: "Stream", render: s => s.stream },
      { title: "Device", render: deviceCell },
      { title: "From", cls: "hide-narrow", render: s => s.client_ip },
      { title: "Streamer", cls: "hide-narrow", render: s => `${s.streamer || "—"} (${s.dialect})` },
      { title: "Started", cls: "hide-narrow", render: s => fmtTime(s.started_at) },
      { title: "Ended", render: s => fmtTime(s.ended_at) },
      { title: "Watched", cls: "num", render: s => s.ended_at ? fmtDuration((new Date(s.ended_at) - new Date(s.started_at)) / 1000) : "—" },
      { title: "End reason", render: s => endReason(s.end_reason) }], page.items, "No ended sessions."),
      pager(page.total, offset, next => { offset = Math.max(0, next); load(); }),
      reasonLegend());
  }
  async function load() {
    try {
      await (ended ? loadEnded() : loadLive());
      stamp.textContent = "Updated " + new Date().toLocaleTimeString();
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
  // The live list follows the viewers; the history is paged, so it stays put.
  if (!ended) state.timer = setInterval(() => { if (!document.querySelector("dialog[open]")) load(); }, 5000);
};

// ---------- statistics ----------
pages.stats = function () {
  const now = new Date(), dayAgo = new Date(now - 86400000);
  const from = h("input", { type: "datetime-local", id: "stats-from", value: toLocalInput(dayAgo) });
  const to = h("input", { type: "datetime-local", id: "stats-to", value: toLocalInput(now) });
  const stream = h("input", { id: "stats-stream", placeholder: "every stream" });
  const nowCards = h("div", { class: "cards" });
  const chart = h("div", { class: "panel chart", id: "chart" });
  const top = h("div", {});
  put(main(), h("h1", { text: "Statistics" }),
    h("h2", { text: "Viewers now" }), nowCards,
    h("form", { class: "toolbar", id: "stats-range" },
      h("div", {}, h("label", { for: "stats-from", text: "From" }), from),
      h("div", {}, h("label", { for: "stats-to", text: "To" }), to),
      h("div", {}, h("label", { for: "stats-stream", text: "Stream (chart)" }), stream),
      h("button", { type: "submit", class: "primary" }, "Show")),
    h("h2", { text: "Concurrent viewers" }), chart,
    h("h2", { text: "Top streams" }), top);
  $("#stats-range").addEventListener("submit", e => { e.preventDefault(); load(); });
  // Viewers now: counted from the live sessions (refreshed every 10 s).
  async function loadNow() {
    try {
      const live = await api("GET", "/api/v1/sessions?limit=1000");
      const perStream = {};
      for (const x of live.items) perStream[x.stream] = (perStream[x.stream] || 0) + 1;
      const ranked = Object.entries(perStream).sort((a, b) => b[1] - a[1]);
      put(nowCards,
        h("div", { class: "card" }, h("div", { class: "value", text: String(live.total) }), h("div", { class: "label", text: "all streams" })),
        ranked.slice(0, 11).map(([name, n]) => h("div", { class: "card" }, h("div", { class: "value", text: String(n) }), h("div", { class: "label", text: name }))));
    } catch (e) { if (e.status !== 401) put(nowCards, errorState(e)); }
  }
  state.timer = setInterval(loadNow, 10000);
  async function load() {
    const range = { from: fromLocalInput(from.value), to: fromLocalInput(to.value) };
    try {
      await loadNow();
      const streams = await api("GET", "/api/v1/stats/streams" + query(range));
      const ranked = streams.items.slice().sort((a, b) => b.watch_seconds - a.watch_seconds).filter(s => s.plays || s.watch_seconds);
      const hours = ranked.reduce((n, s) => n + s.watch_seconds, 0);
      put(top, 
        h("p", { class: "muted", text: `${fmtHours(hours)} watch hours in this range.` }),
        table([
          { title: "Stream", render: s => s.stream },
          { title: "Watch hours", cls: "num", render: s => fmtHours(s.watch_seconds) },
          { title: "Plays", cls: "num", render: s => String(s.plays) },
          { title: "Unique users", cls: "num hide-narrow", render: s => String(s.unique_users) },
          { title: "Peak", cls: "num hide-narrow", render: s => String(s.peak_viewers) },
          { title: "Now", cls: "num", render: s => String(s.viewers) }], ranked.slice(0, 50), "No viewing in this range."));
    } catch (e) {
      if (e.status === 401) return;
      const msg = e.status === 404 ? "Per-stream statistics are not available on this server." : "Could not load: " + e.message;
      put(top, h("div", { class: "banner error", text: msg }));
      put(nowCards, );
    }
    try {
      const tl = await api("GET", "/api/v1/stats/timeline" + query({ ...range, stream: stream.value.trim() }));
      drawChart(chart, tl.points);
    } catch (e) { if (e.status !== 401) put(chart, errorState(e)); }
  }
  load();
};
const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}
function drawChart(container, points) {
  if (!points.length) { put(container, h("div", { class: "empty", text: "No data in this range." })); return; }
  const W = 800, H = 260, L = 44, R = 12, T = 12, B = 28;
  const t0 = new Date(points[0].t).getTime(), t1 = new Date(points[points.length - 1].t).getTime() || t0 + 1;
  const maxV = Math.max(1, ...points.map(p => p.viewers));
  const niceMax = maxV <= 5 ? maxV : Math.ceil(maxV / 5) * 5;
  const x = t => L + (W - L - R) * ((t - t0) / Math.max(1, t1 - t0));
  const y = v => T + (H - T - B) * (1 - v / niceMax);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "Concurrent viewers over time" });
  const ticks = Math.min(5, niceMax);
  for (let i = 0; i <= ticks; i++) {
    const v = Math.round(niceMax * i / ticks);
    svg.append(s("line", { class: "gridline", x1: L, x2: W - R, y1: y(v), y2: y(v) }), s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)));
  }
  const spanDays = (t1 - t0) > 2 * 86400000;
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (t1 - t0) * i / 4, d = new Date(t);
    svg.append(s("text", { x: x(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
      spanDays ? d.toLocaleDateString() : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  }
  // Step line: the count holds until the next point.
  let path = "";
  points.forEach((p, i) => {
    const px = x(new Date(p.t).getTime()), py = y(p.viewers);
    path += i === 0 ? `M${px},${py}` : `H${px}V${py}`;
  });
  const area = `${path}V${y(0)}H${x(t0)}Z`;
  svg.append(s("path", { class: "area", d: area }), s("path", { class: "line", d: path }),
    s("line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  const peak = points.reduce((a, b) => (b.viewers > a.viewers ? b : a));
  put(container, svg, h("p", { class: "muted", text: `Peak ${peak.viewers} at ${fmtTime(peak.t)}; ${points.length} points.` }));
}

// ---------- packages ----------
pages.packages = function () {
  const list = h("div", {});
  const notice = h("div", { id: "packages-notice" });
  put(main(), h("h1", { text: "Packages" }),
    isAdmin() ? h("div", { class: "toolbar" }, h("button", { type: "button", class: "primary", id: "new-package", onclick: () => packageForm(null, load) }, "New package")) : null, notice, list);
  async function load() {
    try {
      const page = await api("GET", "/api/v1/packages?limit=1000");
      put(list, table([
        { title: "Name", render: p => h("strong", { text: p.name }) },
        { title: "Streams", render: p => p.streams.join(", ") },
        { title: "Viewers at most", cls: "num", render: p => fmtLimit(p.max_viewers, "no cap") },
        { title: "Users", cls: "num", render: p => String(p.users) },
        { title: "Comment", cls: "hide-narrow", render: p => p.comment },
        { title: "", cls: "actions", render: p => isAdmin() ? [
          h("button", { type: "button", class: "small", onclick: () => packageForm(p, load) }, "Edit"),
          h("button", { type: "button", class: "small danger", onclick: async () => {
            // The server refuses to delete the only package of a user (none = every stream) and says whose.
            if (!await confirmDialog(p.users
              ? `Delete package ${p.name}? Its ${p.users === 1 ? "user keeps" : p.users + " users keep"} their other packages; where it is someone's only package, the deletion is refused until they are given another.`
              : `Delete package ${p.name}? No user has it.`, "Delete")) return;
            try { await api("DELETE", `/api/v1/packages/${enc(p.name)}`); put(notice); toast(`${p.name} deleted`); load(); }
            catch (e) { if (e.status === 409) showRefusal(notice, e); else if (e.status !== 401) toast(e.message); }
          } }, "Delete")] : "" }], page.items, "No packages yet: every user may watch every stream."));
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
};
function packageForm(p, reload) {
  const v = p || { name: "", streams: [], comment: "", max_viewers: null };
  const content = h("div", { class: "grid" },
    field("name", "Name", h("input", { value: v.name, required: true })),
    field("streams", "Streams (one per line; * matches any characters)", h("textarea", { rows: "5", "data-wide": "1" }, v.streams.join("\n"))),
    field("max_viewers", "Viewers at most (empty: no cap)", limitInput(v.max_viewers),
      "Active sessions on these streams, all viewers together."),
    field("comment", "Comment", h("input", { value: v.comment })));
  formDialog(p ? `Edit ${p.name}` : "New package", content, async form => {
    const body = { name: form.elements.name.value.trim(), comment: form.elements.comment.value.trim(),
      streams: form.elements.streams.value.split(/[\n,]/).map(x => x.trim()).filter(Boolean),
      max_viewers: limitValue(form, "max_viewers") };
    if (p) await api("PATCH", `/api/v1/packages/${enc(p.name)}`, body); else await api("POST", "/api/v1/packages", body);
    toast(`${body.name} saved`); reload();
  });
}

// ---------- IP rules ----------
pages["ip-rules"] = function () {
  const list = h("div", {});
  put(main(), h("h1", { text: "IP rules" }),
    h("p", { class: "muted", text: "deny refuses any request from the network; allow admits viewers without credentials." }),
    isAdmin() ? h("div", { class: "toolbar" }, h("button", { type: "button", class: "primary", id: "new-rule", onclick: () => ruleForm(null, load) }, "New rule")) : null, list);
  async function load() {
    try {
      const page = await api("GET", "/api/v1/ip-rules?limit=1000");
      put(list, table([
        { title: "Network", render: r => h("strong", { text: r.network }) },
        { title: "Action", render: r => badge(r.action, r.action === "allow" ? "on" : "off") },
        { title: "Comment", render: r => r.comment },
        { title: "Created", cls: "hide-narrow", render: r => fmtTime(r.created_at) },
        { title: "", cls: "actions", render: r => isAdmin() ? [
          h("button", { type: "button", class: "small", onclick: () => ruleForm(r, load) }, "Edit"),
          h("button", { type: "button", class: "small danger", onclick: async () => {
            if (!await confirmDialog(`Delete the ${r.action} rule for ${r.network}?`, "Delete")) return;
            try { await api("DELETE", `/api/v1/ip-rules/${r.id}`); toast("Rule deleted"); load(); } catch (e) { toast(e.message); }
          } }, "Delete")] : "" }], page.items, "No IP rules."));
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
};
function ruleForm(r, reload) {
  const v = r || { network: "", action: "deny", comment: "" };
  const action = h("select", {}, ["deny", "allow"].map(a => h("option", { value: a, selected: v.action === a }, a)));
  const content = h("div", { class: "grid" },
    field("network", "Network (IP or CIDR)", h("input", { value: v.network, required: true })),
    field("action", "Action", action),
    field("comment", "Comment", h("input", { value: v.comment })));
  formDialog(r ? `Edit rule ${r.network}` : "New IP rule", content, async form => {
    const body = { network: form.elements.network.value.trim(), action: action.value, comment: form.elements.comment.value.trim() };
    // The API has no PATCH for rules: an edit creates the new rule, then removes the old one.
    await api("POST", "/api/v1/ip-rules", body);
    if (r) await api("DELETE", `/api/v1/ip-rules/${r.id}`);
    toast("Rule saved"); reload();
  });
}

// ---------- audit ----------
pages.audit = function () {
  let offset = 0;
  const actor = h("input", { type: "search", placeholder: "Actor", "aria-label": "Filter by actor" });
  const objectType = h("select", { "aria-label": "Object type" }, ["", "user", "token", "package", "ip_rule", "session", "users"].map(t => h("option", { value: t }, t || "any object")));
  const list = h("div", {});
  put(main(), h("h1", { text: "Audit log" }),
    h("div", { class: "toolbar" }, h("div", { class: "grow" }, actor), objectType), list);
  let debounce;
  actor.addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(() => { offset = 0; load(); }, 250); });
  objectType.addEventListener("change", () => { offset = 0; load(); });
  async function load() {
    try {
      const page = await api("GET", "/api/v1/audit" + query({ actor: actor.value.trim(), object_type: objectType.value, limit: PAGE, offset }));
      put(list, table([
        { title: "When", render: a => fmtTime(a.at) },
        { title: "Who", render: a => a.actor },
        { title: "Action", render: a => badge(a.action) },
        { title: "Object", render: a => `${a.object_type} ${a.object_id}` },
        { title: "Changes", cls: "hide-narrow", render: a => h("span", { class: "changes", text: JSON.stringify(a.changes) }) }],
        page.items, "No changes recorded."),
        pager(page.total, offset, next => { offset = Math.max(0, next); load(); }));
    } catch (e) { if (e.status !== 401) put(list, errorState(e)); }
  }
  load();
};

// ---------- start ----------
document.addEventListener("DOMContentLoaded", async () => {
  $("#logout").addEventListener("click", async () => {
    try { await api("POST", "/api/v1/logout"); } catch (e) { /* signed out anyway */ }
    location.hash = "";
    signedOut("");
  });
  try {
    const response = await fetch("/api/v1/login", { credentials: "same-origin", headers: { "Accept": "application/json" } });
    if (response.ok) { signedIn(await response.json()); return; }
  } catch (e) { /* fall through to the form */ }
  renderLogin("");
});
