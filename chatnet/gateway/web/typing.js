// "<name> is typing...": `typing` is sent at most once per TYPING_EVERY_MS
// while the user types in a conversation (never queued: it means nothing
// later); a `typing` frame shows its sender under the log for TYPING_SHOWN_MS,
// or until their message comes.
import {$, S, conv, quietly} from "./state.js";
import {online, transmit} from "./connection.js";

export const TYPING_EVERY_MS = 3000;
export const TYPING_SHOWN_MS = 5000;

const sentAt = new Map(); // conversation key -> when `typing` was last sent
let timer = null;

// the user typed in the composer
export function typed(text) {
  const c = S.current;
  if (!c || !text.trim() || (text.startsWith("/") && !text.startsWith("//")) || !online() || S.noTyping) return;
  if (c.kind === "room" && !c.joined) return;
  const now = Date.now();
  if (now - (sentAt.get(c.key) || 0) < TYPING_EVERY_MS) return;
  sentAt.set(c.key, now);
  const id = transmit("typing", c.kind === "room" ? {roomName: c.name} : {to: c.name});
  quietly(id, "typing");
}

// a message was sent: the next keystroke says typing again at once
export function sent(c) {
  if (c) sentAt.delete(c.key);
}

export function onTyping(d) {
  if (typeof d.from !== "string" || d.from === S.user) return;
  let c;
  if (typeof d.roomName === "string" && d.roomName) c = conv("room", d.roomName, false);
  else c = conv("dm", d.from, false);
  if (!c) return;
  if (!c.typing) c.typing = new Map();
  c.typing.set(d.from, Date.now() + TYPING_SHOWN_MS);
  renderTyping();
}

// their message came: no longer typing
export function stopped(c, user) {
  if (c && c.typing && c.typing.delete(user)) renderTyping();
}

export function typingText(names) {
  if (!names.length) return "";
  if (names.length === 1) return `${names[0]} is typing...`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing...`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]} are typing...`;
  return `${names.length} people are typing...`;
}

export function renderTyping() {
  clearTimeout(timer);
  const c = S.current;
  const now = Date.now();
  const names = [];
  let next = Infinity;
  if (c && c.typing) {
    for (const [name, until] of c.typing) {
      if (until <= now) c.typing.delete(name);
      else {
        names.push(name);
        next = Math.min(next, until);
      }
    }
  }
  names.sort();
  $("typing").textContent = typingText(names);
  if (names.length) timer = setTimeout(renderTyping, next - now + 50);
}
