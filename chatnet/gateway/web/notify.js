// Browser notifications and read markers. Permission is asked on a user
// action (logging in); mentions and direct messages are notified while the
// page is hidden. A conversation viewed sends `read` (its last seq) so the
// user's other sessions and devices clear their unread counts.
import {S, conv, quietly} from "./state.js";
import {online, transmit} from "./connection.js";
import {renderSidebar} from "./view.js";

export const READ_DELAY_MS = 500;

const hasNotifications = () => typeof Notification !== "undefined";

export function askPermission() {
  try {
    if (hasNotifications() && Notification.permission === "default") Notification.requestPermission();
  } catch (e) { /* not offered by this browser */ }
}

// a message shown: a notification if it matters and nobody is looking
export function maybeNotify(c, item) {
  if (!document.hidden || item.own || !hasNotifications() || Notification.permission !== "granted") return;
  if (!(item.mention || c.kind === "dm")) return;
  try {
    const title = c.kind === "dm" ? `${item.from}` : `${item.from} in #${c.name}`;
    const n = new Notification(title, {body: item.text, tag: c.key});
    n.onclick = () => {
      window.focus();
      n.close();
    };
  } catch (e) { /* notifications refused */ }
}

// -- read markers -------------------------------------------------------------

let readTimer = null;
let readConv = null;

// the current conversation is seen (switched to, or a message came while looking)
export function viewed() {
  if (document.hidden || !S.current) return;
  clearTimeout(readTimer);
  readConv = S.current;
  readTimer = setTimeout(() => sendRead(readConv), READ_DELAY_MS);
}

// leaving a conversation: what was seen there is read now, not after the delay
export function flushRead() {
  if (readTimer === null) return;
  clearTimeout(readTimer);
  readTimer = null;
  sendRead(readConv);
}

function lastShownSeq(c) {
  let last = 0;
  for (const item of c.items) if (item.type === "msg" && Number.isInteger(item.seq) && item.seq > last) last = item.seq;
  return Math.max(last, S.lastSeq.get(c.key) || 0);
}

export function sendRead(c = S.current) {
  readTimer = null;
  if (!c || !online() || S.noRead) return;
  if (c.kind === "room" && !c.joined) return;
  const seq = lastShownSeq(c);
  if (!seq || seq <= (c.readSeq || 0)) return;
  c.readSeq = seq;
  const id = transmit("read", c.kind === "room" ? {roomName: c.name, seq} : {conversation: c.name, seq});
  quietly(id, "read");
}

// read on another session of the user's: nothing unread up to seq
export function onRead(d) {
  let c = null;
  if (typeof d.roomName === "string") c = conv("room", d.roomName, false);
  else if (typeof d.conversation === "string") c = conv("dm", d.conversation, false);
  if (!c) return;
  if (Number.isInteger(d.seq)) c.readSeq = Math.max(c.readSeq || 0, d.seq);
  const seq = c.readSeq || 0;
  c.unread = c.items.filter((i) => i.type === "msg" && !i.own && Number.isInteger(i.seq) && i.seq > seq).length;
  if (!c.unread) c.mention = false;
  renderSidebar();
}
