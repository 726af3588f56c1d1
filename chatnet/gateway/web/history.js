// Older messages: the `history` request, asked when the log is scrolled to its
// top or by the "Load earlier messages" button; the answer goes in seq order
// before what is shown, the scroll position kept.
import {$, S, conv} from "./state.js";
import {request} from "./connection.js";
import {messageItem} from "./frames.js";
import {add, note, redraw} from "./view.js";

export const HISTORY_PAGE = 50;

// the target of a request about a conversation: {roomName} or {conversation}
export function target(c) {
  return c.kind === "room" ? {roomName: c.name} : {conversation: c.name};
}

// the lowest seq shown in a conversation (null: none)
export function firstSeq(c) {
  let first = null;
  for (const item of c.items) {
    if (item.type === "msg" && Number.isInteger(item.seq) && (first === null || item.seq < first)) first = item.seq;
  }
  return first;
}

// whether there may be older messages to load
export function hasEarlier(c) {
  const first = firstSeq(c);
  return Boolean(c && c.more !== false && first !== null && first > 1);
}

export function loadEarlier(c = S.current) {
  if (!c || c.loadingEarlier || !hasEarlier(c)) return false;
  if (c.kind === "room" && !c.joined) return false;
  c.loadingEarlier = true;
  request("history", Object.assign(target(c), {before: firstSeq(c), limit: HISTORY_PAGE}), c);
  renderLoadButton();
  return true;
}

export function onHistory(d, re) {
  const entry = S.pending.get(re);
  S.pending.delete(re);
  let c = entry ? entry.conv : null;
  if (!c && typeof d.roomName === "string") c = conv("room", d.roomName);
  else if (!c && typeof d.conversation === "string") c = conv("dm", d.conversation);
  if (!c) return;
  c.loadingEarlier = false;
  const messages = Array.isArray(d.messages) ? d.messages : [];
  const log = $("messages");
  const fromBottom = log.scrollHeight - log.scrollTop;
  let added = 0;
  for (const m of messages) {
    if (!m || typeof m !== "object") continue;
    if (m.msgId && S.seen.has(m.msgId)) continue;
    const item = messageItem(m);
    if (!item) continue;
    if (m.msgId) S.seen.add(m.msgId);
    c.items.splice(insertAt(c, item.seq), 0, item);
    added += 1;
  }
  const before = firstSeq(c);
  c.more = d.more === true || (d.more === undefined && added > 0 && before !== null && before > 1);
  if (c !== S.current) return;
  redraw();
  // the messages that were shown stay where they were
  log.scrollTop = log.scrollHeight - fromBottom;
  if (!added && !c.more) note("no earlier messages", "system", c);
}

// a failed history request: no retrying by itself
export function historyFailed(entry, text) {
  const c = entry.conv;
  c.loadingEarlier = false;
  c.more = false;
  if (c === S.current) renderLoadButton();
  add(c, {type: "note", lines: [`cannot load earlier messages: ${text}`], level: "error", ts: Date.now()});
}

// before the first message numbered after it (notes stay where they are)
function insertAt(c, seq) {
  const at = c.items.findIndex((i) => i.type === "msg" && Number.isInteger(i.seq) && i.seq > seq);
  return at < 0 ? c.items.length : at;
}

// the button at the top of the log
export function loadButton(c) {
  const li = document.createElement("li");
  li.className = "load-earlier";
  const b = document.createElement("button");
  b.type = "button";
  b.id = "load-earlier";
  b.textContent = c.loadingEarlier ? "Loading earlier messages…" : "Load earlier messages";
  b.disabled = Boolean(c.loadingEarlier);
  b.addEventListener("click", () => loadEarlier(c));
  li.append(b);
  return li;
}

export function renderLoadButton() {
  const c = S.current;
  const old = $("messages").querySelector(".load-earlier");
  if (!c || !hasEarlier(c)) {
    if (old) old.remove();
    return;
  }
  if (old) old.replaceWith(loadButton(c));
  else $("messages").prepend(loadButton(c));
}

// Scrolled to the top by the user (wheel, touch, keys, the scroll bar; not a
// scroll of the page's own, such as bringing the button into view): the page before.
const USER_SCROLL_MS = 1500;
let userScrolledAt = 0;

export function userScrolled(event) {
  if (event.type === "pointerdown" && event.target !== $("messages")) return; // the scroll bar only
  userScrolledAt = Date.now();
}

export function onScroll() {
  const log = $("messages");
  if (Date.now() - userScrolledAt > USER_SCROLL_MS) return;
  if (log.scrollTop < 30 && log.scrollHeight > log.clientHeight) loadEarlier(S.current);
}
