// Rendering: the message log, the header, the side panel, the status line.
import {$, S, WORLD, conv, isAutomatic, plural} from "./state.js";
import {mentionPattern} from "./texts.js";
import {joinRoom, stats} from "./commands.js";
import {actions} from "./edits.js";
import {hasEarlier, loadButton} from "./history.js";
import {flushRead, viewed} from "./notify.js";
import {renderTyping} from "./typing.js";

// Messages of a conversation are shown in seq order, however they came (live,
// replayed, queued while offline): a late one goes before those numbered after it.
export function add(c, item) {
  let at = c.items.length;
  if (item.type === "msg" && Number.isInteger(item.seq)) {
    while (at > 0 && c.items[at - 1].type === "msg" && Number.isInteger(c.items[at - 1].seq) &&
           c.items[at - 1].seq > item.seq) at -= 1;
  }
  c.items.splice(at, 0, item);
  if (c.items.length > 5000) c.items.splice(0, c.items.length - 5000);
  if (c !== S.current) return;
  if (at === c.items.length - 1) appendItem(item, true);
  else redraw();
}

export function note(text, level = "info", c = S.current) {
  const lines = Array.isArray(text) ? text : [text];
  add(c || conv("room", WORLD), {type: "note", lines, level, ts: Date.now()});
}

// -- rendering --------------------------------------------------------------

let renderedDay = null;

export function dayOf(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86400000);
  if (dayOf(ts) === dayOf(today.getTime())) return "Today";
  if (dayOf(ts) === dayOf(yesterday.getTime())) return "Yesterday";
  return d.toLocaleDateString(undefined, {weekday: "long", year: "numeric", month: "long", day: "numeric"});
}

export function timeText(ts) {
  return new Date(ts).toLocaleTimeString(undefined, {hour: "2-digit", minute: "2-digit"});
}

export function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function hue(name) {
  let h = 2166136261;
  for (const ch of name) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
  return (h % 24) * 15;
}

export function initials(name) {
  const digits = /\d{1,2}$/.exec(name);
  return ((name[0] || "?").toUpperCase() + (digits && digits.index > 0 ? digits[0] : "")).slice(0, 3);
}

export function avatar(name) {
  const a = el("span", "avatar", initials(name));
  a.setAttribute("aria-hidden", "true");
  a.style.setProperty("--hue", hue(name));
  return a;
}

// the text of a message, the user's name marked (not in their own messages)
export function highlighted(text, mark = true) {
  const span = el("span", "text");
  const pattern = mentionPattern();
  const match = S.user && mark ? pattern.exec(text) : null;
  if (!match) {
    span.textContent = text;
    return span;
  }
  const start = match.index + match[1].length;
  span.append(text.slice(0, start), el("mark", "", match[2]), text.slice(start + match[2].length));
  return span;
}

export const STATE_TEXT = {sending: "sending…", waiting: "waiting for the connection", failed: "not delivered",
  queued: "delivered when they log in", unconfirmed: "not confirmed"};

export function renderItem(item) {
  const li = el("li");
  if (item.type === "note") {
    li.className = `note ${item.level}`;
    if (item.lines.length > 1) li.append(el("pre", "", item.lines.join("\n")));
    else li.textContent = item.lines[0];
    item.el = li;
    return li;
  }
  li.className = `msg${item.own ? " own" : ""}${item.mention ? " mention" : ""}`;
  if (item.msgId) li.dataset.msgid = item.msgId;
  const body = el("div", "body");
  const meta = el("div", "meta");
  const from = el("button", "from", item.from);
  from.type = "button";
  from.title = `stats of ${item.from}`;
  from.addEventListener("click", () => stats(item.from));
  const time = el("time", "", timeText(item.ts));
  time.dateTime = new Date(item.ts).toISOString();
  meta.append(from, " ", time);
  const state = el("span", "state", STATE_TEXT[item.state] || "");
  meta.append(state);
  if (item.edited && !item.deleted) {
    const edited = el("span", "edited", "edited");
    if (Number.isInteger(item.edited)) edited.title = `edited ${new Date(item.edited).toLocaleString()}`;
    meta.append(edited);
  }
  if (item.deleted) {
    li.classList.add("deleted");
    body.append(meta, el("span", "text tombstone", "message deleted"));
  } else {
    body.append(meta, highlighted(item.text, !item.own));
  }
  li.append(avatar(item.from), body);
  const buttons = S.current ? actions(S.current, item) : [];
  if (buttons.length) {
    const tools = el("span", "msg-actions");
    tools.append(...buttons);
    li.append(tools);
  }
  if (item.state && item.state !== "sent") li.classList.add(item.state);
  item.el = li;
  return li;
}

// the text of a message changed (edited, deleted, confirmed): drawn again in place
export function setItemText(item) {
  if (item.el && item.el.isConnected) item.el.replaceWith(renderItem(item));
}

export function setItemState(item, state) {
  item.state = state;
  if (!item.el) return;
  item.el.classList.remove(...Object.keys(STATE_TEXT));
  if (state !== "sent") item.el.classList.add(state);
  const stateEl = item.el.querySelector(".state");
  if (stateEl) stateEl.textContent = STATE_TEXT[state] || "";
  if (item.msgId) item.el.dataset.msgid = item.msgId;
  // its text as delivered (masked), and the buttons a confirmed message has
  setItemText(item);
}

export function removeItem(c, item) {
  const index = c.items.indexOf(item);
  if (index >= 0) c.items.splice(index, 1);
  if (item.el) item.el.remove();
}

export function appendItem(item, live) {
  const log = $("messages");
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  if (item.type === "msg") {
    const day = dayOf(item.ts);
    if (day !== renderedDay) {
      renderedDay = day;
      const sep = el("li", "day");
      sep.append(el("span", "", dayLabel(item.ts)));
      log.append(sep);
    }
  }
  log.append(renderItem(item));
  if (!live || nearBottom || (item.type === "msg" && item.own) || item.type === "note") log.scrollTop = log.scrollHeight;
}

export function redraw() {
  const log = $("messages");
  log.replaceChildren();
  renderedDay = null;
  if (hasEarlier(S.current)) log.append(loadButton(S.current));
  for (const item of S.current.items) appendItem(item, false);
  log.scrollTop = log.scrollHeight;
}

export function switchTo(c) {
  if (!c) return;
  flushRead();
  S.current = c;
  c.unread = 0;
  c.mention = false;
  redraw();
  renderHeader();
  renderSidebar();
  renderTyping();
  viewed();
  document.body.classList.remove("show-sidebar");
  $("menu").setAttribute("aria-expanded", "false");
}

export function renderHeader() {
  const c = S.current;
  if (!c) return;
  $("conv-name").textContent = c.kind === "room" ? `#${c.name}` : `@${c.name}`;
  let info = "direct conversation";
  if (c.kind === "room") {
    info = Number.isInteger(c.members) ? plural(c.members, "member") : "room";
    if (isAutomatic(c.name)) info += c.name === WORLD ? " · everyone online" : " · your alliance";
  }
  $("conv-info").textContent = info;
  $("leave-button").hidden = !(c.kind === "room" && !isAutomatic(c.name));
  $("stats-button").textContent = c.kind === "dm" ? `Stats of ${c.name}` : "My stats";
}

export function convButton(c) {
  const li = el("li");
  const b = el("button", "conv");
  b.type = "button";
  if (c === S.current) b.setAttribute("aria-current", "true");
  b.append(c.kind === "room" ? el("span", "sigil", "#") : avatar(c.name), el("span", "name", c.name));
  if (c.unread) {
    const badge = el("span", `badge${c.mention ? " mention" : ""}`, String(c.unread));
    badge.setAttribute("aria-label", `${c.unread} unread`);
    b.append(badge);
  }
  b.addEventListener("click", () => switchTo(c));
  li.append(b);
  return li;
}

export function renderSidebar() {
  // world always; the user's alliance room once the server names it (listRooms, or a message in it)
  const rooms = [...S.convs.values()].filter((c) => c.kind === "room" && (c.joined || c.name === WORLD));
  rooms.sort((a, b) => (a.name === WORLD ? -1 : b.name === WORLD ? 1 : a.name.localeCompare(b.name)));
  $("room-list").replaceChildren(...rooms.map(convButton));
  const invited = [...S.invited.entries()].filter(([name]) => !rooms.some((c) => c.name === name));
  invited.sort((a, b) => a[0].localeCompare(b[0]));
  $("invite-list").replaceChildren(...invited.map(([name, by]) => {
    const li = el("li", "invitation");
    const b = el("button", "conv joinable invited");
    b.type = "button";
    b.append(el("span", "sigil", "#"), el("span", "name", name));
    if (by) b.title = `invited by ${by}`;
    b.append(el("span", "join", "Join"));
    b.setAttribute("aria-label", `Join #${name}${by ? `, invited by ${by}` : ""}`);
    b.addEventListener("click", () => joinRoom(name));
    li.append(b);
    return li;
  }));
  $("invite-heading").hidden = !invited.length;
  const others = [...S.otherRooms.entries()].filter(([name]) => !rooms.some((c) => c.name === name) && !S.invited.has(name));
  others.sort((a, b) => a[0].localeCompare(b[0]));
  $("other-room-list").replaceChildren(...others.map(([name, members]) => {
    const li = el("li");
    const b = el("button", "conv joinable");
    b.type = "button";
    b.append(el("span", "sigil", "#"), el("span", "name", name));
    if (Number.isInteger(members)) b.append(el("span", "count", plural(members, "member")));
    b.append(el("span", "join", "Join"));
    b.setAttribute("aria-label", `Join #${name}`);
    b.addEventListener("click", () => joinRoom(name));
    li.append(b);
    return li;
  }));
  if (!others.length) $("other-room-list").replaceChildren(el("li", "empty", "none"));
  const dms = [...S.convs.values()].filter((c) => c.kind === "dm");
  dms.sort((a, b) => a.name.localeCompare(b.name));
  $("dm-list").replaceChildren(...dms.map(convButton));
  if (!dms.length) $("dm-list").replaceChildren(el("li", "empty", "none yet"));
  const unread = [...S.convs.values()].reduce((n, c) => n + c.unread, 0);
  document.title = unread ? `(${unread}) chatnet` : "chatnet";
  $("menu").setAttribute("aria-label", unread ? `Rooms and conversations, ${unread} unread` : "Rooms and conversations");
  $("menu").classList.toggle("has-unread", unread > 0);
}

export function renderStatus() {
  const status = $("status");
  status.dataset.state = S.state;
  const node = S.nodeId || "";
  let text;
  switch (S.state) {
    case "online": text = `${node} · online as ${S.user}`; break;
    case "connecting": text = S.everOnline ? `${node ? node + " · " : ""}connecting…` : "connecting…"; break;
    case "catching-up": text = `${node} · catching up…`; break;
    case "reconnecting": {
      const secs = Math.max(0, Math.ceil((S.retryAt - Date.now()) / 1000));
      text = `reconnecting... ${secs ? `next try in ${secs} s` : "now"} (${S.reason})`;
      break;
    }
    case "replaced": text = `${node} · replaced by a newer login elsewhere; not reconnecting`; break;
    case "disconnected": text = `${node} · disconnected by the server; not reconnecting`; break;
    default: text = "not connected";
  }
  $("status-text").textContent = text;
}

setInterval(() => {
  if (S.state === "reconnecting") renderStatus();
}, 1000);

export function showBanner(text, action, onAction) {
  const banner = $("banner");
  banner.replaceChildren(el("span", "", text));
  if (action) {
    const b = el("button", "", action);
    b.type = "button";
    b.addEventListener("click", onAction);
    banner.append(b);
  }
  banner.hidden = false;
}

export function hideBanner() {
  $("banner").hidden = true;
}

// -- the login form and the chat view

export function loginFailed(text) {
  $("login-error").textContent = text;
  $("login-button").disabled = false;
  $("login-view").hidden = false;
  $("chat-view").hidden = true;
}

export function showChat() {
  $("login-view").hidden = true;
  $("chat-view").hidden = false;
  $("me-name").textContent = S.user;
  $("me-avatar").replaceWith(Object.assign(avatar(S.user), {id: "me-avatar"}));
  try {
    localStorage.setItem("chatnet:user", S.user);
  } catch (e) { /* not remembered */ }
  switchTo(conv("room", WORLD));
  $("message").focus();
}

// an error that belongs to no conversation (a room that could not be joined):
// shown above the composer for a while, and under the join form
let flashTimer = null;

export function flash(text) {
  const box = $("flash");
  box.textContent = text;
  box.hidden = false;
  $("join-error").textContent = text;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => {
    box.hidden = true;
    $("join-error").textContent = "";
  }, 8000);
}
