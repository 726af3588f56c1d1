// The client's state: constants, the conversations and what was seen.

export const FEATURES = ["ack", "offline", "resume", "multi", "live"];
export const WORLD = "world";
export const ALLIANCE = "alliance:";
export const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
export const LOGIN_TIMEOUT_MS = 10000;
export const POPULAR_DEFAULT = 10;
export const POPULAR_MAX = 1000;
export const CLOSE = {GOING_AWAY: 4001, LOGIN_TIMEOUT: 4008, REPLACED: 4009, DISCONNECTED: 4010};
export const IDEMPOTENT = new Set(["joinRoom", "leaveRoom", "userInfo", "popular", "listRooms", "history"]);

export const $ = (id) => document.getElementById(id);
export const isAutomatic = (room) => room === WORLD || (room.startsWith(ALLIANCE) && room.length > ALLIANCE.length);
export const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;
export const roomKey = (name) => `room:${name}`;
export const dmKey = (name) => `dm:${name}`;

// -- state ------------------------------------------------------------------

export const S = {
  user: null,
  password: "",
  ws: null,
  nodeId: null,
  state: "login", // login, connecting, catching-up, online, reconnecting, replaced, closed
  reason: "",
  everOnline: false,
  features: new Set(),
  attempt: 0,
  retryTimer: null,
  retryAt: 0,
  loginTimer: null,
  convs: new Map(), // key -> conversation
  otherRooms: new Map(), // room name -> members
  current: null,
  lastSeq: new Map(), // conversation key -> last seq seen
  seen: new Set(), // msgIds shown
  pending: new Map(), // request id -> {action, data, conv, item}
  unacked: [], // chat requests sent and not confirmed: {data, item, id}
  outbox: [], // requests made while not online: {action, data, conv, item}
  resumeId: null,
  invited: new Map(), // rooms the user is invited to and not in -> who invited them (or null)
  roles: new Map(), // room -> the user's role there ("owner", "admin", "member"), when known (edits.setRole)
  quiet: new Map(), // request id -> "typing" / "read": sent without an answer expected; an error is not shown
  noTyping: false, // the server does not know `typing`
  noRead: false, // nor `read`
};

// a request sent without waiting for its answer (`typing`, `read`): an error
// for it is not shown; the last QUIET_KEPT are remembered
const QUIET_KEPT = 64;
export function quietly(id, kind) {
  S.quiet.set(id, kind);
  if (S.quiet.size > QUIET_KEPT) S.quiet.delete(S.quiet.keys().next().value);
}

let lastId = 0;
export function nextId() {
  lastId = Math.max(Date.now() * 1000, lastId + 1);
  return lastId;
}

// -- conversations ----------------------------------------------------------

export function conv(kind, name, create = true) {
  const key = kind === "room" ? roomKey(name) : dmKey(name);
  let c = S.convs.get(key);
  if (!c && create) {
    c = {key, kind, name, items: [], unread: 0, mention: false, joined: false, members: null, history: null,
      more: null, loadingEarlier: false, readSeq: 0, typing: null};
    S.convs.set(key, c);
  }
  return c;
}

export function saw(key, seq) {
  if (Number.isInteger(seq) && seq > (S.lastSeq.get(key) || 0)) S.lastSeq.set(key, seq);
}

export function storedRooms() {
  try {
    const rooms = JSON.parse(localStorage.getItem(`chatnet:rooms:${S.user}`) || "[]");
    return Array.isArray(rooms) ? rooms.filter((r) => typeof r === "string" && !isAutomatic(r)) : [];
  } catch (e) {
    return [];
  }
}

export function storeRooms() {
  const rooms = [...S.convs.values()].filter((c) => c.kind === "room" && c.joined && !isAutomatic(c.name));
  try {
    localStorage.setItem(`chatnet:rooms:${S.user}`, JSON.stringify(rooms.map((c) => c.name)));
  } catch (e) { /* private mode: not remembered */ }
}
