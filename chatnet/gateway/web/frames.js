// What the node sends: one handler per action (docs/protocol.md).
import {S, WORLD, conv, isAutomatic, plural, roomKey, saw, storeRooms} from "./state.js";
import {goOnline, onLogin, onResumed, rejoin, replaced, sendNow} from "./connection.js";
import {duration, mentions, offlineText, popularLines, statsText, textMatches} from "./texts.js";
import {joinRoom} from "./commands.js";
import {add, flash, loginFailed, note, removeItem, renderHeader, renderSidebar, setItemState, switchTo} from "./view.js";
import {failed as editFailed, onAnswer as onEditAnswer, onDeleted, onEdited, setRole} from "./edits.js";
import {historyFailed, onHistory} from "./history.js";
import {maybeNotify, onRead, viewed} from "./notify.js";
import {onTyping, stopped} from "./typing.js";

// -- frames -----------------------------------------------------------------

export function onFrame(frame) {
  const data = frame.data && typeof frame.data === "object" ? frame.data : {};
  const re = frame.re;
  switch (frame.action) {
    case "login": return onLogin(data);
    case "chat": return onChat(data);
    case "ack": return onAck(data, re);
    case "queued": return onQueued(data, re);
    case "offline": return note(offlineText(data.delivered || 0, data.dropped || 0), "info", conv("room", WORLD));
    case "resume": return onResumed(data, re);
    case "joinRoom": return onJoined(data, re);
    case "leaveRoom": return onLeft(data, re);
    case "listRooms": return onRooms(data, re);
    case "userInfo": return onUserInfo(data, re);
    case "popular": return onPopular(data, re);
    case "roomNotice": return onRoomNotice(data);
    case "createRoom": case "invite": case "kick": case "ban": case "mute": case "setRole":
      return onModerated(frame.action, data, re);
    case "history": return onHistory(data, re);
    case "messageEdited": return onEdited(data);
    case "messageDeleted": return onDeleted(data);
    case "edit": case "delete": return onEditAnswer(frame.action, data, re);
    case "typing": return onTyping(data);
    case "read": return onRead(data);
    case "members": return onMembers(data);
    case "error": return onError(data, re);
    default: return undefined;
  }
}

// a message of `chat`, `history` or `resume` as shown: null if it is none
export function messageItem(d) {
  if (typeof d.from !== "string") return null;
  const deleted = d.deleted === true;
  if (!deleted && typeof d.message !== "string") return null;
  const own = d.from === S.user && d.system !== true;
  const text = deleted ? "" : d.message;
  return {type: "msg", from: d.from, text, ts: Number.isInteger(d.ts) ? d.ts : Date.now(), msgId: d.msgId, seq: d.seq, own,
    mention: !own && !deleted && mentions(text), state: "sent", deleted,
    edited: Number.isInteger(d.edited) ? d.edited : d.edited === true};
}

export function onChat(d) {
  if (typeof d.from !== "string" || (typeof d.message !== "string" && d.deleted !== true)) return;
  const room = typeof d.roomName === "string" ? d.roomName : "";
  // a message of the server API: its direct ones are the conversation "system"
  const system = d.system === true;
  const own = d.from === S.user && !system;
  let c;
  if (room) {
    c = conv("room", room);
    if (isAutomatic(room)) c.joined = true;
    saw(c.key, d.seq);
  } else if (own && typeof d.to === "string" && d.to) {
    // sent by this user from another of their sessions (multi)
    c = conv("dm", d.to);
    saw(c.key, d.seq);
  } else if (own) {
    // one of ours, replayed: its conversation is that of the request it was
    const entry = S.unacked.find((e) => !e.data.isGroup && textMatches(e.data.message, d.message));
    if (d.msgId && S.seen.has(d.msgId)) return;
    if (!entry) return;
    c = entry.conv;
    saw(c.key, d.seq);
  } else {
    c = conv("dm", system ? "system" : d.from);
    saw(c.key, d.seq);
  }
  if (d.msgId) {
    if (S.seen.has(d.msgId)) return;
    S.seen.add(d.msgId);
  }
  if (own) {
    // the echo (or replay) of a message of ours still shown as sending
    const entry = S.unacked.find((e) => e.conv === c && e.item && !e.item.msgId && textMatches(e.data.message, d.message));
    if (entry) {
      confirm(entry, d);
      S.unacked.splice(S.unacked.indexOf(entry), 1);
      return;
    }
  }
  const item = messageItem(d);
  add(c, item);
  stopped(c, d.from);
  if (c.history !== null && c.history !== undefined) c.history += 1;
  else if (!own && !item.deleted && Number.isInteger(item.seq) && item.seq <= (c.readSeq || 0)) {
    // read already, on another device
  } else if ((c !== S.current || document.hidden) && !own && !item.deleted) {
    c.unread += 1;
    if (item.mention) c.mention = true;
    maybeNotify(c, item);
  }
  if (c === S.current) viewed();
  renderSidebar();
}

export function confirm(entry, d) {
  const item = entry.item;
  item.msgId = d.msgId;
  if (typeof d.message === "string") item.text = d.message; // as delivered (masked)
  if (Number.isInteger(d.ts)) item.ts = d.ts;
  item.seq = d.seq;
  if (d.msgId) S.seen.add(d.msgId);
  setItemState(item, "sent");
  // one's own message is read (the server counts every message after the marker)
  if (entry.conv === S.current) viewed();
}

export function onAck(d, re) {
  const entry = S.pending.get(re);
  S.pending.delete(re);
  const index = S.unacked.findIndex((e) => e.id === re);
  if (index >= 0) S.unacked.splice(index, 1);
  if (!entry || entry.action !== "chat" || !entry.item) return;
  if (entry.item.msgId && entry.item.msgId === d.msgId) return;
  if (!entry.data.isGroup) saw(entry.conv.key, d.seq);
  if (d.msgId && S.seen.has(d.msgId)) {
    // the echo came first and is shown: this line is one too many
    removeItem(entry.conv, entry.item);
    return;
  }
  // the text as delivered (masked), if the server says it
  confirm(entry, {msgId: d.msgId, ts: d.ts, seq: d.seq, message: d.message});
}

export function onQueued(d, re) {
  const entry = S.pending.get(re);
  S.pending.delete(re);
  const index = S.unacked.findIndex((e) => e.id === re);
  if (index >= 0) S.unacked.splice(index, 1);
  if (!entry || !entry.item) return;
  saw(entry.conv.key, d.seq);
  confirm(entry, {msgId: d.msgId, ts: d.ts, seq: d.seq});
  setItemState(entry.item, "queued");
}

export function onJoined(d, re) {
  const entry = S.pending.get(re);
  S.pending.delete(re);
  const room = typeof d.roomName === "string" ? d.roomName : entry && entry.data.roomName;
  if (!room) return;
  const c = conv("room", room);
  const history = c.history || 0;
  c.history = null;
  c.joined = true;
  if (Number.isInteger(d.members)) c.members = d.members;
  setRole(room, d.role);
  S.otherRooms.delete(room);
  S.invited.delete(room);
  storeRooms();
  if (entry && !entry.internal) {
    const more = history ? `, ${plural(history, "earlier message")}` : "";
    note(Number.isInteger(d.members) ? `joined #${room} (${plural(d.members, "member")}${more})` : `joined #${room}${more}`,
      "system", c);
    switchTo(c);
    sendNow("listRooms", {}, null, true);
  }
  renderSidebar();
  if (c === S.current) renderHeader();
}

export function onLeft(d, re) {
  const entry = S.pending.get(re);
  S.pending.delete(re);
  const room = typeof d.roomName === "string" ? d.roomName : entry && entry.data.roomName;
  if (!room) return;
  const c = conv("room", room);
  c.joined = false;
  S.lastSeq.delete(c.key);
  S.otherRooms.set(room, Number.isInteger(c.members) ? Math.max(0, c.members - 1) : null);
  storeRooms();
  S.convs.delete(c.key);
  if (S.current === c) switchTo(conv("room", WORLD));
  note(`left #${room}`, "system");
  sendNow("listRooms", {}, null, true);
  renderSidebar();
}

export function onRooms(d, re) {
  const entry = S.pending.get(re);
  S.pending.delete(re);
  const lines = roomList(Array.isArray(d.rooms) ? d.rooms : []);
  renderSidebar();
  if (S.current) renderHeader();
  if (entry && entry.conv) note(lines.length ? [`rooms (${lines.length}):`, ...lines.sort()] : ["no rooms yet: /create <room> makes one"], "answer", entry.conv);
}

// the rooms of `listRooms` (or of the login answer): counts, unread, invitations; their lines for /rooms
export function roomList(rooms) {
  S.otherRooms.clear();
  S.invited.clear();
  const lines = [];
  for (const r of rooms) {
    if (!r || typeof r.roomName !== "string") continue;
    let c = S.convs.get(roomKey(r.roomName));
    // the automatic rooms listed are the user's own (world, their alliance): always in them;
    // a room the server says the user is in (joined on another device) is one of the page's too
    if ((isAutomatic(r.roomName) || r.member === true) && !(c && c.joined)) {
      c = conv("room", r.roomName);
      c.joined = true;
      // its last messages and member count
      if (c.name !== WORLD && c.history === null) sendNow("joinRoom", {roomName: c.name, username: S.user}, c, true);
    }
    const joined = Boolean(c && c.joined) || r.joined === true;
    if (c && c.joined) {
      if (Number.isInteger(r.members)) c.members = r.members;
      if (Number.isInteger(r.unread) && r.unread >= 0 && c !== S.current) c.unread = r.unread;
    } else if (r.invited === true) {
      S.invited.set(r.roomName, typeof r.invitedBy === "string" ? r.invitedBy : typeof r.by === "string" ? r.by : null);
    } else {
      S.otherRooms.set(r.roomName, r.members);
    }
    if (typeof r.role === "string") setRole(r.roomName, r.role);
    else if (typeof r.owner === "string" && r.owner === S.user) setRole(r.roomName, "owner");
    const count = Number.isInteger(r.members) ? plural(r.members, "member") : "";
    const marks = `${r.private ? "  (private)" : ""}${joined ? "  (joined)" : ""}${r.invited === true && !joined ? "  (invited)" : ""}`;
    lines.push(`  #${r.roomName}  ${count}${marks}`);
  }
  return lines;
}

// a room's member count changed
export function onMembers(d) {
  if (!d || typeof d.roomName !== "string" || !Number.isInteger(d.members)) return;
  const c = S.convs.get(roomKey(d.roomName));
  if (c) c.members = d.members;
  else if (S.otherRooms.has(d.roomName)) S.otherRooms.set(d.roomName, d.members);
  if (c && c === S.current) renderHeader();
  renderSidebar();
}

export function onUserInfo(d, re) {
  const entry = S.pending.get(re);
  S.pending.delete(re);
  note(statsText(d), "answer", entry ? entry.conv : S.current);
}

export function onPopular(d, re) {
  const entry = S.pending.get(re);
  S.pending.delete(re);
  note(popularLines(d.words), "answer", entry ? entry.conv : S.current);
}

export function onModerated(action, d, re) {
  const entry = S.pending.get(re);
  S.pending.delete(re);
  const data = Object.assign({}, entry ? entry.data : {}, d);
  const room = String(data.roomName || "?");
  const user = String(data.username || "?");
  const target = entry && entry.conv ? entry.conv : S.current;
  if (action === "createRoom") {
    // the owner is a member: joining makes it a room of this page
    setRole(room, "owner");
    joinRoom(room);
    return note(`created #${room}${data.private ? ` (private: /invite ${room} <user> lets someone in)` : ""}`, "answer",
      conv("room", room));
  }
  if (action === "setRole") {
    return note(`${user} is ${data.role === "admin" ? "an admin" : "a member"} of #${room} now`, "answer", target);
  }
  if (confirmed(action, room, user)) return undefined;
  const done = {invite: "invited to", kick: "kicked out of", ban: "banned from", mute: "muted in"}[action];
  return note(`${user} ${done} #${room}`, "answer", target);
}

// "user2 was muted in #room by user1 for 00d 00h 10m 00s", "you were kicked out of #room by user1"
function moderationLine(kind, room, who, by, until) {
  if (kind === "mute") {
    const left = Number.isInteger(until) ? ` for ${duration(Math.max(0, (until - Date.now()) / 1000))}` : "";
    return `${who} muted in #${room} by ${by}${left}`;
  }
  const verb = {kick: "kicked out of", ban: "banned from"}[kind] || String(kind);
  return `${who} ${verb} #${room} by ${by}`;
}

// One confirmation per moderation action: the answer to the moderator and the
// room's notice (which the moderator gets too, as a member) say the same; the
// first of them is shown.
const CONFIRMED_MS = 10000;
const recentlyConfirmed = new Map(); // "action room user" -> when

function confirmed(action, room, user) {
  const key = `${action} ${room} ${user}`;
  const now = Date.now();
  for (const [k, at] of recentlyConfirmed) if (now - at > CONFIRMED_MS) recentlyConfirmed.delete(k);
  if (recentlyConfirmed.has(key)) return true;
  recentlyConfirmed.set(key, now);
  return false;
}

export function onRoomNotice(d) {
  if (!d || typeof d.roomName !== "string") return;
  const room = d.roomName;
  const kind = typeof d.kind === "string" ? d.kind : d.action;
  if (Number.isInteger(d.members)) onMembers(d);
  if (kind === "invited" || (kind === "invite" && d.username === S.user)) {
    const by = typeof d.by === "string" ? d.by : null;
    const c = S.convs.get(roomKey(room));
    if (c && c.joined) return;
    S.invited.set(room, by);
    S.otherRooms.delete(room);
    note(`${by || "someone"} invited you to #${room}: Join it from the side panel, or /join ${room}`, "system");
    renderSidebar();
    return;
  }
  if (kind === "members" || kind === "join" || kind === "leave" || !kind) return;
  if (kind === "setRole" || kind === "role") {
    if (d.username === S.user) setRole(room, d.role);
    return;
  }
  // the moderator's own action was confirmed by its answer already
  if (d.by === S.user && d.username !== S.user && confirmed(kind, room, String(d.username))) return;
  const me = d.username === S.user;
  const who = me ? "you were" : `${d.username} was`;
  const text = moderationLine(kind, room, who, d.by, d.until);
  const c = S.convs.get(roomKey(room));
  note(text, me ? "error" : "system", c && c.joined ? c : S.current);
  if (me && (kind === "kick" || kind === "ban") && c && c.joined) {
    // no longer a member: as after a leave
    c.joined = false;
    S.lastSeq.delete(c.key);
    storeRooms();
    if (S.current === c) switchTo(conv("room", WORLD));
    if (c !== S.current) note(text, "error");
    sendNow("listRooms", {}, null, true);
    renderSidebar();
  }
}

export function onError(d, re) {
  const code = Number(d.code) || 0;
  const message = typeof d.message === "string" && d.message ? d.message : String(d.ext || "error");
  if (code === 409) return replaced();
  if (S.quiet.has(re)) {
    // `typing` or `read` refused: an older server; not asked again
    if (code === 400 || code === 404 || code === 501) S[S.quiet.get(re) === "typing" ? "noTyping" : "noRead"] = true;
    S.quiet.delete(re);
    return undefined;
  }
  if (!S.everOnline && S.state === "connecting") {
    // the first login was refused (401: wrong name or password; 429: locked out for a while)
    S.state = "login";
    if (S.ws) S.ws.close(1000);
    return loginFailed(code === 429 ? message : `cannot log in: ${message}`);
  }
  if (re === S.resumeId && re !== null) {
    // resume refused (a room left meanwhile): join the rooms again instead
    S.resumeId = null;
    note(`catching up refused (${message}); joining the rooms again`, "error");
    rejoin([...S.convs.values()].filter((c) => c.kind === "room" && c.joined).map((c) => c.name));
    return goOnline(`reconnected to ${S.nodeId}`);
  }
  if (S.state === "connecting") {
    // a reconnect's login refused: 429 says when to try again
    note(`login on ${S.nodeId} failed: ${message} (${code})`, "error");
    if (S.ws) S.ws.close(1000);
    return undefined;
  }
  const entry = re !== undefined ? S.pending.get(re) : undefined;
  S.pending.delete(re);
  if (entry && entry.action === "chat") {
    const index = S.unacked.indexOf(entry);
    if (index >= 0) S.unacked.splice(index, 1);
    if (entry.item) setItemState(entry.item, "failed");
    const d2 = entry.data;
    const text = `not delivered to ${d2.isGroup ? "#" + d2.roomName : d2.to}: ${message}`;
    note(text, "error", entry.conv);
    if (entry.conv !== S.current) note(text, "error");
    return undefined;
  }
  if (entry && entry.action === "joinRoom") {
    // no room of the page (a phantom): it goes; the error goes where the join was asked, not into a conversation
    const c = entry.conv;
    c.history = null;
    if (c.name !== WORLD) {
      c.joined = false;
      storeRooms();
      if (!c.items.some((i) => i.type === "msg")) {
        S.convs.delete(c.key);
        if (S.current === c) switchTo(conv("room", WORLD));
      }
      renderSidebar();
    }
    flash(`cannot join #${entry.data.roomName}: ${message}${code ? ` (${code})` : ""}`);
    return undefined;
  }
  if (entry && entry.action === "history") return historyFailed(entry, `${message}${code ? ` (${code})` : ""}`);
  if (entry && (entry.action === "edit" || entry.action === "delete")) return editFailed(entry, `${message}${code ? ` (${code})` : ""}`);
  const prefix = entry ? {
    leaveRoom: `cannot leave #${entry.data.roomName}: `,
    userInfo: `/stats ${entry.data.username}: `,
    popular: "/popular: ",
    listRooms: "/rooms: ",
    createRoom: `cannot create #${entry.data.roomName}: `,
    invite: `/invite ${entry.data.username} to #${entry.data.roomName}: `,
    kick: `/kick ${entry.data.username} from #${entry.data.roomName}: `,
    ban: `/ban ${entry.data.username} from #${entry.data.roomName}: `,
    mute: `/mute ${entry.data.username} in #${entry.data.roomName}: `,
    setRole: `/role ${entry.data.username} in #${entry.data.roomName}: `,
  }[entry.action] || "" : "";
  note(`${prefix}${message}${code ? ` (${code})` : ""}`, "error", entry && entry.conv ? entry.conv : S.current);
  return undefined;
}
