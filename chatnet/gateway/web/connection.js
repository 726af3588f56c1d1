// The WebSocket to a node: connecting, logging in, catching up, reconnecting.
import {BACKOFF_MS, CLOSE, FEATURES, IDEMPOTENT, LOGIN_TIMEOUT_MS, S, WORLD, conv, isAutomatic, nextId, plural, storedRooms} from "./state.js";
import {onFrame, roomList} from "./frames.js";
import {hideBanner, loginFailed, note, renderSidebar, renderStatus, setItemState, showBanner, showChat} from "./view.js";

// -- the connection ---------------------------------------------------------

export function setState(state, reason = "") {
  S.state = state;
  S.reason = reason;
  renderStatus();
}

export async function connect() {
  clearTimeout(S.retryTimer);
  S.retryTimer = null;
  setState("connecting");
  let server;
  try {
    const answer = await fetch("/server", {cache: "no-store"});
    if (!answer.ok) throw new Error(answer.status === 503 ? "no chat node available" : `gateway answered ${answer.status}`);
    server = await answer.json();
  } catch (e) {
    return lost(`cannot reach the gateway: ${e.message}`);
  }
  if (S.state !== "connecting") return;
  S.nodeId = server.nodeId || `${server.host}:${server.port}`;
  renderStatus();
  let ws;
  try {
    ws = new WebSocket(server.url || `ws://${server.host}:${server.port}/`);
  } catch (e) {
    return lost(`cannot connect to ${S.nodeId}: ${e.message}`);
  }
  S.ws = ws;
  S.loginTimer = setTimeout(() => ws.close(), LOGIN_TIMEOUT_MS);
  ws.onopen = () => {
    if (ws !== S.ws) return;
    const data = {username: S.user, features: FEATURES};
    if (S.password) data.password = S.password;
    transmit("login", data);
  };
  ws.onmessage = (event) => {
    if (ws !== S.ws) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (frame && typeof frame === "object") onFrame(frame);
  };
  ws.onclose = (event) => {
    if (ws !== S.ws) return;
    onClose(event.code, event.reason);
  };
}

export function transmit(action, data) {
  const id = nextId();
  if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify({id, action, data}));
  return id;
}

export function online() {
  return S.state === "online" && S.ws && S.ws.readyState === WebSocket.OPEN;
}

// Send now, or keep for when the connection is back.
export function request(action, data, c = S.current, item = null) {
  const entry = {action, data, conv: c, item};
  if (!online()) {
    S.outbox.push(entry);
    if (item) setItemState(item, "waiting");
    return;
  }
  send(entry);
}

export function send(entry) {
  const id = transmit(entry.action, entry.data);
  S.pending.set(id, entry);
  if (entry.action === "chat") {
    entry.id = id;
    if (S.features.has("ack")) {
      S.unacked.push(entry);
      if (entry.item) setItemState(entry.item, "sending");
    } else if (entry.item) {
      setItemState(entry.item, "sent");
    }
  }
  return id;
}

export function onClose(code, reason) {
  clearTimeout(S.loginTimer);
  S.ws = null;
  if (S.state === "replaced" || code === CLOSE.REPLACED) return replaced();
  if (S.state === "disconnected" || code === CLOSE.DISCONNECTED) return disconnected();
  if (S.state === "closed" || S.state === "login") return;
  // what was not answered is asked again; what was not confirmed is checked after the catch-up
  for (const entry of S.pending.values()) {
    if (IDEMPOTENT.has(entry.action) && !entry.internal) S.outbox.unshift(entry);
  }
  S.pending.clear();
  const node = S.nodeId || "the node";
  let why = `lost connection to ${node}`;
  if (code === CLOSE.GOING_AWAY) why = `${node} is shutting down`;
  // 4008: the node stopped waiting for this page (no login in time, or it read too slowly): back with a resume
  else if (code === CLOSE.LOGIN_TIMEOUT) why = `${node} closed the connection: ${reason || "too slow"}`;
  else if (code === 1000) why = `${node} closed the connection`;
  else if (code && code !== 1005 && code !== 1006) why = `connection to ${node} closed (${code}${reason ? ": " + reason : ""})`;
  lost(why, code === CLOSE.GOING_AWAY || code === CLOSE.LOGIN_TIMEOUT);
}

export function lost(why, quick = false) {
  if (!S.everOnline) {
    // the first login: back to the form
    setState("login");
    loginFailed(why);
    return;
  }
  if (S.state === "online" || S.state === "catching-up") note(`disconnected: ${why}`, "error");
  const delay = quick && S.attempt === 0 ? 100 : BACKOFF_MS[Math.min(S.attempt, BACKOFF_MS.length - 1)] * (0.75 + Math.random() * 0.5);
  S.attempt += 1;
  S.retryAt = Date.now() + delay;
  setState("reconnecting", why);
  S.retryTimer = setTimeout(connect, delay);
}

export function replaced() {
  halt("replaced", "a newer login of the same user took this session over",
    "This session was replaced by a newer login of the same user elsewhere. Not reconnecting.",
    "Replaced: you logged in somewhere else. This page will not reconnect by itself.");
}

export function disconnected() {
  halt("disconnected", "disconnected by the server",
    "The server disconnected this session. Not reconnecting.",
    "Disconnected by the server. This page will not reconnect by itself.");
}

// the session ended for good (close 4009 or 4010): no reconnecting until asked
export function halt(state, reason, noteText, bannerText) {
  clearTimeout(S.retryTimer);
  clearTimeout(S.loginTimer);
  if (S.ws) {
    const ws = S.ws;
    S.ws = null;
    ws.close();
  }
  if (S.state === state) return;
  for (const entry of [...S.unacked, ...S.outbox]) if (entry.item) setItemState(entry.item, "unconfirmed");
  S.unacked = [];
  S.outbox = [];
  setState(state, reason);
  note(noteText, "error");
  showBanner(bannerText, "Reconnect here", () => {
    hideBanner();
    S.attempt = 0;
    connect();
  });
}

// what a login answer may say of the rooms (newer servers): the rooms as
// listRooms gives them, and the unread counts from the read markers
function loginRooms(data) {
  if (Array.isArray(data.rooms)) roomList(data.rooms);
  if (data.unread && typeof data.unread === "object" && !Array.isArray(data.unread)) {
    for (const [room, n] of Object.entries(data.unread)) {
      const c = conv("room", room, false);
      if (c && Number.isInteger(n) && n >= 0 && c !== S.current) c.unread = n;
    }
  }
}

export function onLogin(data) {
  clearTimeout(S.loginTimer);
  if (typeof data.nodeId === "string" && data.nodeId) S.nodeId = data.nodeId;
  if (typeof data.username === "string" && data.username) S.user = data.username;
  S.features = new Set(Array.isArray(data.features) ? data.features : []);
  S.attempt = 0;
  if (!S.everOnline) {
    S.everOnline = true;
    showChat();
    // the first request lets the live messages go (resume); then the rooms with their history
    request("listRooms", {}, null);
    sendNow("joinRoom", {roomName: WORLD, username: S.user}, conv("room", WORLD), true);
    for (const room of storedRooms()) {
      conv("room", room).joined = true;
      sendNow("joinRoom", {roomName: room, username: S.user}, conv("room", room), true);
    }
    loginRooms(data);
    renderSidebar();
    return goOnline(`connected to ${S.nodeId} as ${S.user}`);
  }
  loginRooms(data);
  if (S.features.has("resume")) {
    setState("catching-up");
    const rooms = {};
    const conversations = {};
    for (const c of S.convs.values()) {
      const seq = S.lastSeq.get(c.key);
      if (c.kind === "room" && (c.joined || (isAutomatic(c.name) && seq !== undefined))) rooms[c.name] = seq || 0;
      else if (c.kind === "dm" && (seq !== undefined || S.unacked.some((e) => e.conv === c))) conversations[c.name] = seq || 0;
    }
    S.resumeId = transmit("resume", {rooms, conversations});
    return undefined;
  }
  rejoin([...S.convs.values()].filter((c) => c.kind === "room" && c.joined).map((c) => c.name));
  return goOnline(`reconnected to ${S.nodeId}`);
}

export function sendNow(action, data, c, internal) {
  const entry = {action, data, conv: c, item: null, internal};
  const id = transmit(action, data);
  S.pending.set(id, entry);
  if (action === "joinRoom") c.history = 0;
  return id;
}

export function rejoin(rooms) {
  for (const room of rooms) sendNow("joinRoom", {roomName: room, username: S.user}, conv("room", room), true);
}

export function onResumed(data, re) {
  if (re !== S.resumeId) return;
  S.resumeId = null;
  const tooOld = Array.isArray(data.tooOld) ? data.tooOld : [];
  // a room that cannot be replayed: its last 50 messages, by joining it again
  rejoin(tooOld.map((t) => t && t.roomName).filter((r) => typeof r === "string"));
  const replayed = Number.isInteger(data.replayed) ? data.replayed : 0;
  goOnline(`reconnected to ${S.nodeId}${replayed ? `; caught up on ${plural(replayed, "message")}` : ""}`);
}

export function goOnline(text) {
  setState("online");
  hideBanner();
  // what the node never confirmed goes again, then what was typed meanwhile
  const resend = S.unacked.filter((e) => e.item && e.item.state !== "sent");
  S.unacked = [];
  for (const entry of resend) send({action: entry.action, data: entry.data, conv: entry.conv, item: entry.item});
  const waiting = S.outbox;
  S.outbox = [];
  for (const entry of waiting) send(entry);
  const queued = waiting.filter((e) => e.action === "chat").length;
  const parts = [text];
  if (resend.length) parts.push(`sent again ${plural(resend.length, "message")} not confirmed before the connection dropped`);
  if (queued) parts.push(`sent ${plural(queued, "message")} typed while not connected`);
  if (S.current) note(parts.join("; "), "system");
}
