// The chatnet web client: one page, plain JavaScript, no build step.
// It asks the gateway (GET /server) for a node and speaks docs/protocol.md
// over a WebSocket, with the ack, offline and resume extensions (and asks for
// multi, which a server grants only if it has it).
"use strict";

(() => {
  const FEATURES = ["ack", "offline", "resume", "multi"];
  const WORLD = "world";
  const ALLIANCE = "alliance:";
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
  const LOGIN_TIMEOUT_MS = 10000;
  const POPULAR_DEFAULT = 10;
  const POPULAR_MAX = 1000;
  const CLOSE = {GOING_AWAY: 4001, LOGIN_TIMEOUT: 4008, REPLACED: 4009, DISCONNECTED: 4010};
  const IDEMPOTENT = new Set(["joinRoom", "leaveRoom", "userInfo", "popular", "listRooms"]);
  const COMMANDS = [
    ["/join <room>", "join a room (shows its last 50 messages) and make it current"],
    ["/leave [room]", "leave a room (default: the current one)"],
    ["/msg <user> <words...>", "send a direct message"],
    ["/chat room:<room> <words...>", "send a message to a room"],
    ["/room <room>", "switch to a room you are in"],
    ["/rooms", "list the rooms"],
    ["/create <room> [private]", "create a room (yours: you moderate it) and join it"],
    ["/invite <room> <user>", "let a user join your private room (owner, admins)"],
    ["/kick <room> <user>", "put a member out of a room (owner, admins)"],
    ["/ban <room> <user>", "put a user out of a room for good (owner, admins)"],
    ["/mute <room> <user> <time>", "silence a member: 30, 30s, 10m, 2h, 7d at most (owner, admins)"],
    ["/role <room> <user> admin|member", "make a member an admin, or a member again (owner)"],
    ["/stats <user>", "how long a user has been online, and on which node"],
    ["/popular [n]", "the n most used words right now (default 10)"],
    ["/whoami", "who and where you are"],
    ["/reconnect", "connect again through the gateway"],
    ["/help", "list the commands"],
    ["<words...>", "a line without / goes to the current conversation (//x sends /x)"],
  ];

  const $ = (id) => document.getElementById(id);
  const isAutomatic = (room) => room === WORLD || (room.startsWith(ALLIANCE) && room.length > ALLIANCE.length);
  const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;
  const roomKey = (name) => `room:${name}`;
  const dmKey = (name) => `dm:${name}`;

  // -- state ------------------------------------------------------------------

  const S = {
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
  };

  let lastId = 0;
  function nextId() {
    lastId = Math.max(Date.now() * 1000, lastId + 1);
    return lastId;
  }

  // -- conversations ----------------------------------------------------------

  function conv(kind, name, create = true) {
    const key = kind === "room" ? roomKey(name) : dmKey(name);
    let c = S.convs.get(key);
    if (!c && create) {
      c = {key, kind, name, items: [], unread: 0, mention: false, joined: false, members: null, history: null};
      S.convs.set(key, c);
    }
    return c;
  }

  function saw(key, seq) {
    if (Number.isInteger(seq) && seq > (S.lastSeq.get(key) || 0)) S.lastSeq.set(key, seq);
  }

  function storedRooms() {
    try {
      const rooms = JSON.parse(localStorage.getItem(`chatnet:rooms:${S.user}`) || "[]");
      return Array.isArray(rooms) ? rooms.filter((r) => typeof r === "string" && !isAutomatic(r)) : [];
    } catch (e) {
      return [];
    }
  }

  function storeRooms() {
    const rooms = [...S.convs.values()].filter((c) => c.kind === "room" && c.joined && !isAutomatic(c.name));
    try {
      localStorage.setItem(`chatnet:rooms:${S.user}`, JSON.stringify(rooms.map((c) => c.name)));
    } catch (e) { /* private mode: not remembered */ }
  }

  // Messages of a conversation are shown in seq order, however they came (live,
  // replayed, queued while offline): a late one goes before those numbered after it.
  function add(c, item) {
    let at = c.items.length;
    if (item.type === "msg" && Number.isInteger(item.seq)) {
      while (at > 0 && c.items[at - 1].type === "msg" && Number.isInteger(c.items[at - 1].seq) &&
             c.items[at - 1].seq > item.seq) at -= 1;
    }
    c.items.splice(at, 0, item);
    if (c.items.length > 2000) c.items.splice(0, c.items.length - 2000);
    if (c !== S.current) return;
    if (at === c.items.length - 1) appendItem(item, true);
    else redraw();
  }

  function note(text, level = "info", c = S.current) {
    const lines = Array.isArray(text) ? text : [text];
    add(c || conv("room", WORLD), {type: "note", lines, level, ts: Date.now()});
  }

  // -- the connection ---------------------------------------------------------

  function setState(state, reason = "") {
    S.state = state;
    S.reason = reason;
    renderStatus();
  }

  async function connect() {
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

  function transmit(action, data) {
    const id = nextId();
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify({id, action, data}));
    return id;
  }

  function online() {
    return S.state === "online" && S.ws && S.ws.readyState === WebSocket.OPEN;
  }

  // Send now, or keep for when the connection is back.
  function request(action, data, c = S.current, item = null) {
    const entry = {action, data, conv: c, item};
    if (!online()) {
      S.outbox.push(entry);
      if (item) setItemState(item, "waiting");
      return;
    }
    send(entry);
  }

  function send(entry) {
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

  function onClose(code, reason) {
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

  function lost(why, quick = false) {
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

  function replaced() {
    halt("replaced", "a newer login of the same user took this session over",
      "This session was replaced by a newer login of the same user elsewhere. Not reconnecting.",
      "Replaced: you logged in somewhere else. This page will not reconnect by itself.");
  }

  function disconnected() {
    halt("disconnected", "disconnected by the server",
      "The server disconnected this session. Not reconnecting.",
      "Disconnected by the server. This page will not reconnect by itself.");
  }

  // the session ended for good (close 4009 or 4010): no reconnecting until asked
  function halt(state, reason, noteText, bannerText) {
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

  // -- frames -----------------------------------------------------------------

  function onFrame(frame) {
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
      case "error": return onError(data, re);
      default: return undefined;
    }
  }

  function onLogin(data) {
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
      renderSidebar();
      return goOnline(`connected to ${S.nodeId} as ${S.user}`);
    }
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

  function sendNow(action, data, c, internal) {
    const entry = {action, data, conv: c, item: null, internal};
    const id = transmit(action, data);
    S.pending.set(id, entry);
    if (action === "joinRoom") c.history = 0;
    return id;
  }

  function rejoin(rooms) {
    for (const room of rooms) sendNow("joinRoom", {roomName: room, username: S.user}, conv("room", room), true);
  }

  function onResumed(data, re) {
    if (re !== S.resumeId) return;
    S.resumeId = null;
    const tooOld = Array.isArray(data.tooOld) ? data.tooOld : [];
    // a room that cannot be replayed: its last 50 messages, by joining it again
    rejoin(tooOld.map((t) => t && t.roomName).filter((r) => typeof r === "string"));
    const replayed = Number.isInteger(data.replayed) ? data.replayed : 0;
    goOnline(`reconnected to ${S.nodeId}${replayed ? `; caught up on ${plural(replayed, "message")}` : ""}`);
  }

  function goOnline(text) {
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

  function onChat(d) {
    if (typeof d.from !== "string" || typeof d.message !== "string") return;
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
    const item = {type: "msg", from: d.from, text: d.message, ts: d.ts, msgId: d.msgId, seq: d.seq, own,
      mention: !own && mentions(d.message), state: "sent"};
    add(c, item);
    if (c.history !== null && c.history !== undefined) c.history += 1;
    else if (c !== S.current && !own) {
      c.unread += 1;
      if (item.mention) c.mention = true;
    }
    renderSidebar();
  }

  function confirm(entry, d) {
    const item = entry.item;
    item.msgId = d.msgId;
    if (typeof d.message === "string") item.text = d.message; // as delivered (masked)
    if (Number.isInteger(d.ts)) item.ts = d.ts;
    item.seq = d.seq;
    if (d.msgId) S.seen.add(d.msgId);
    setItemState(item, "sent");
  }

  function onAck(d, re) {
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
    confirm(entry, {msgId: d.msgId, ts: d.ts, seq: d.seq});
  }

  function onQueued(d, re) {
    const entry = S.pending.get(re);
    S.pending.delete(re);
    const index = S.unacked.findIndex((e) => e.id === re);
    if (index >= 0) S.unacked.splice(index, 1);
    if (!entry || !entry.item) return;
    saw(entry.conv.key, d.seq);
    confirm(entry, {msgId: d.msgId, ts: d.ts, seq: d.seq});
    setItemState(entry.item, "queued");
  }

  function onJoined(d, re) {
    const entry = S.pending.get(re);
    S.pending.delete(re);
    const room = typeof d.roomName === "string" ? d.roomName : entry && entry.data.roomName;
    if (!room) return;
    const c = conv("room", room);
    const history = c.history || 0;
    c.history = null;
    c.joined = true;
    if (Number.isInteger(d.members)) c.members = d.members;
    S.otherRooms.delete(room);
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

  function onLeft(d, re) {
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

  function onRooms(d, re) {
    const entry = S.pending.get(re);
    S.pending.delete(re);
    const rooms = Array.isArray(d.rooms) ? d.rooms : [];
    S.otherRooms.clear();
    const lines = [];
    for (const r of rooms) {
      if (!r || typeof r.roomName !== "string") continue;
      const c = S.convs.get(roomKey(r.roomName));
      if (c && c.joined) c.members = r.members;
      else if (!isAutomatic(r.roomName)) S.otherRooms.set(r.roomName, r.members);
      const count = Number.isInteger(r.members) ? plural(r.members, "member") : "";
      lines.push(`  #${r.roomName}  ${count}${r.private ? "  (private)" : ""}${c && c.joined ? "  (joined)" : ""}`);
    }
    renderSidebar();
    if (S.current) renderHeader();
    if (entry && entry.conv) note(lines.length ? [`rooms (${lines.length}):`, ...lines.sort()] : ["no rooms yet: /create <room> makes one"], "answer", entry.conv);
  }

  function onUserInfo(d, re) {
    const entry = S.pending.get(re);
    S.pending.delete(re);
    note(statsText(d), "answer", entry ? entry.conv : S.current);
  }

  function onPopular(d, re) {
    const entry = S.pending.get(re);
    S.pending.delete(re);
    note(popularLines(d.words), "answer", entry ? entry.conv : S.current);
  }

  const MUTE_MAX = 7 * 24 * 3600;
  const UNITS = {"": 1, s: 1, m: 60, h: 3600, d: 86400};

  function parseDuration(word) {
    const m = /^(\d{1,9})([smhd]?)$/.exec(String(word).trim().toLowerCase());
    return m ? Number(m[1]) * UNITS[m[2]] : null;
  }

  function onModerated(action, d, re) {
    const entry = S.pending.get(re);
    S.pending.delete(re);
    const data = Object.assign({}, entry ? entry.data : {}, d);
    const room = String(data.roomName || "?");
    const user = String(data.username || "?");
    const target = entry && entry.conv ? entry.conv : S.current;
    if (action === "createRoom") {
      // the owner is a member: joining makes it a room of this page
      joinRoom(room);
      return note(`created #${room}${data.private ? " (private: /invite <user> lets someone in)" : ""}`, "answer",
        conv("room", room));
    }
    if (action === "setRole") {
      return note(`${user} is ${data.role === "admin" ? "an admin" : "a member"} of #${room} now`, "answer", target);
    }
    const done = {invite: "invited to", kick: "kicked out of", ban: "banned from", mute: "muted in"}[action];
    return note(`${user} ${done} #${room}`, "answer", target);
  }

  function onRoomNotice(d) {
    if (!d || typeof d.roomName !== "string") return;
    const room = d.roomName;
    const me = d.username === S.user;
    const who = me ? "you were" : `${d.username} was`;
    let text;
    if (d.action === "mute") {
      const left = Number.isInteger(d.until) ? ` for ${duration(Math.max(0, (d.until - Date.now()) / 1000))}` : "";
      text = `${who} muted in #${room} by ${d.by}${left}`;
    } else {
      const verb = {kick: "kicked out of", ban: "banned from"}[d.action] || String(d.action);
      text = `${who} ${verb} #${room} by ${d.by}`;
    }
    const c = S.convs.get(roomKey(room));
    note(text, me ? "error" : "system", c && c.joined ? c : S.current);
    if (me && (d.action === "kick" || d.action === "ban") && c && c.joined) {
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

  function moderate(action, args, extra) {
    const room = (args[0] || "").replace(/^room:/, "").replace(/^#/, "");
    const user = (args[1] || "").replace(/^@/, "");
    const c = S.convs.get(roomKey(room));
    return request(action, Object.assign({roomName: room, username: user}, extra), c && c.joined ? c : S.current);
  }

  function onError(d, re) {
    const code = Number(d.code) || 0;
    const message = typeof d.message === "string" && d.message ? d.message : String(d.ext || "error");
    if (code === 409) return replaced();
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
      const c = entry.conv;
      c.history = null;
      if (!isAutomatic(c.name)) {
        c.joined = false;
        storeRooms();
        if (!c.items.length) {
          S.convs.delete(c.key);
          if (S.current === c) switchTo(conv("room", WORLD));
        }
        renderSidebar();
      }
      note(`cannot join #${entry.data.roomName}: ${message}`, "error");
      return undefined;
    }
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

  // -- texts (as the terminal client words them) ----------------------------------

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function duration(seconds) {
    let s = Math.max(0, Math.floor(seconds));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    return `${pad(d)}d ${pad(h)}h ${pad(m)}m ${pad(s)}s`;
  }

  function statsText(d) {
    const user = d.username || "?";
    if (d.isOnline === false) return `${user}: offline`;
    let onlineFor = d.onlineFor;
    if (typeof onlineFor !== "string" || !onlineFor.trim()) {
      onlineFor = Number.isFinite(d.loginTime) ? duration((Date.now() - d.loginTime) / 1000) : "?";
    }
    const where = Array.isArray(d.nodes) && d.nodes.length > 1 ? `nodes ${d.nodes.join(", ")}` : `node ${d.nodeId || "?"}`;
    return `${user}: online ${onlineFor} on ${where}`;
  }

  function popularLines(words) {
    const list = Array.isArray(words) ? words : [];
    const pairs = [];
    for (let i = 0; i + 1 < list.length; i += 2) pairs.push([String(list[i]), String(list[i + 1])]);
    if (!pairs.length) return ["popular words: none in the recent window"];
    const width = Math.max(...pairs.map(([w]) => w.length));
    return [`popular words (top ${pairs.length}):`,
      ...pairs.map(([w, c], i) => `${String(i + 1).padStart(3)}. ${w.padEnd(width)}  ${c}`)];
  }

  function offlineText(delivered, dropped) {
    let text = `${plural(delivered, "message")} received while you were offline`;
    if (dropped) text += `; ${dropped} older one${dropped === 1 ? " was" : "s were"} dropped`;
    return text;
  }

  // whether what was delivered (profanity masked with *) is what was sent
  function textMatches(sent, got) {
    sent = String(sent).trim();
    got = String(got).trim();
    if (sent === got) return true;
    if ([...sent].length !== [...got].length) return false;
    const a = [...sent];
    return [...got].every((ch, i) => ch === a[i] || ch === "*");
  }

  function escapeRegExp(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  function mentionPattern() {
    return new RegExp(`(^|[^\\w])(@?${escapeRegExp(S.user || "")})(?![\\w])`, "i");
  }

  function mentions(text) {
    return Boolean(S.user) && mentionPattern().test(text);
  }

  // -- commands ---------------------------------------------------------------

  function runLine(line) {
    if (!line.trim()) return;
    if (!line.startsWith("/") || line.startsWith("//")) {
      say(S.current, line.startsWith("//") ? line.slice(1) : line);
      return;
    }
    const [head, ...rest] = line.slice(1).trim().split(/\s+/);
    const args = rest;
    const text = line.slice(1).trim().slice(head.length).trim();
    switch ((head || "").toLowerCase()) {
      case "join": case "joinroom": {
        const room = (args[0] || "").replace(/^room:/, "").replace(/^#/, "");
        if (args.length !== 1 || !room) return usage("/join <room>");
        return joinRoom(room);
      }
      case "leave": {
        if (args.length > 1) return usage("/leave [room]");
        const room = args.length ? args[0].replace(/^room:/, "").replace(/^#/, "") : (S.current && S.current.kind === "room" ? S.current.name : "");
        if (!room) return note("usage: /leave [room] (you have no current room)", "error");
        return leaveRoom(room);
      }
      case "msg": case "chat": {
        const [target, ...words] = text.split(/\s+/);
        const body = text.slice((target || "").length).trim();
        if (!target || !body || !words.length) return usage(head.toLowerCase() === "msg" ? "/msg <user> <words...>" : "/chat <user> <words...>  or  /chat room:<room> <words...>");
        if (target.startsWith("room:") || target.startsWith("#")) {
          if (head.toLowerCase() === "msg") return note("/msg sends to a user; use /chat room:<room> for a room", "error");
          const room = target.replace(/^room:/, "").replace(/^#/, "");
          return say(conv("room", room), body);
        }
        const c = conv("dm", target.replace(/^@/, ""));
        switchTo(c);
        return say(c, body);
      }
      case "room": {
        const room = (args[0] || "").replace(/^room:/, "").replace(/^#/, "");
        const c = room && S.convs.get(roomKey(room));
        if (!c || !c.joined) return note(room ? `you are not in #${room}: /join ${room}` : "usage: /room <room>", "error");
        return switchTo(c);
      }
      case "rooms":
        return request("listRooms", {});
      case "create": case "createroom": {
        const room = (args[0] || "").replace(/^room:/, "").replace(/^#/, "");
        const extra = args.length === 2 ? args[1].toLowerCase() : "";
        if (!room || args.length > 2 || (args.length === 2 && extra !== "private")) return usage("/create <room> [private]");
        return request("createRoom", {roomName: room, private: extra === "private"});
      }
      case "invite": case "kick": case "ban":
        if (args.length !== 2) return usage(`/${head.toLowerCase()} <room> <user>`);
        return moderate(head.toLowerCase(), args, {});
      case "mute": {
        const seconds = args.length === 3 ? parseDuration(args[2]) : null;
        if (args.length !== 3) return usage("/mute <room> <user> <time>");
        if (seconds === null || seconds < 1 || seconds > MUTE_MAX) {
          return note(["the time is 1 s to 7 days: 30, 30s, 10m, 2h or 7d", "usage: /mute <room> <user> <time>"], "error");
        }
        return moderate("mute", args, {seconds});
      }
      case "role": case "setrole": {
        const role = (args[2] || "").toLowerCase();
        if (args.length !== 3 || (role !== "admin" && role !== "member")) return usage("/role <room> <user> admin|member");
        return moderate("setRole", args, {role});
      }
      case "stats":
        if (args.length !== 1) return usage("/stats <user>");
        return stats(args[0].replace(/^@/, ""));
      case "popular": {
        if (args.length > 1) return usage("/popular [n]");
        if (args.length && (!/^\d+$/.test(args[0]) || Number(args[0]) > POPULAR_MAX)) {
          return note([`n must be a whole number from 0 to ${POPULAR_MAX}`, "usage: /popular [n]"], "error");
        }
        return popular(args.length ? Number(args[0]) : POPULAR_DEFAULT);
      }
      case "whoami":
        return note(`you are ${S.user}, ${S.state === "online" ? "on node " + S.nodeId : S.state}`, "answer");
      case "reconnect":
        if (S.ws) {
          const ws = S.ws;
          S.ws = null;
          ws.close(1000);
          onClose(1000, "");
        } else {
          hideBanner();
          S.attempt = 0;
          connect();
        }
        return undefined;
      case "help": case "?":
        return note(["commands:", ...COMMANDS.map(([u, h]) => `  ${u.padEnd(30)} ${h}`)], "answer");
      default:
        return note(`unknown command /${head}; /help lists the commands`, "error");
    }
  }

  function usage(text) {
    note(`usage: ${text}`, "error");
  }

  function say(c, text) {
    if (!c) return;
    const data = c.kind === "room"
      ? {roomName: c.name, isGroup: true, message: text, ts: Date.now(), format: "text"}
      : {to: c.name, isGroup: false, message: text, ts: Date.now(), format: "text"};
    const item = {type: "msg", from: S.user, text, ts: Date.now(), own: true, state: "sending", mention: false};
    add(c, item);
    request("chat", data, c, item);
    renderSidebar();
  }

  function joinRoom(room) {
    const c = S.convs.get(roomKey(room));
    if (c && c.joined) {
      switchTo(c);
      return;
    }
    const target = conv("room", room);
    target.history = 0;
    request("joinRoom", {roomName: room, username: S.user}, target);
  }

  function leaveRoom(room) {
    if (isAutomatic(room)) return note(`#${room} is automatic: it cannot be left`, "error");
    const c = S.convs.get(roomKey(room));
    if (!c || !c.joined) return note(`you are not in #${room}`, "error");
    return request("leaveRoom", {roomName: room}, c);
  }

  function stats(user) {
    request("userInfo", {username: user});
  }

  function popular(n) {
    request("popular", {n});
  }

  // -- rendering --------------------------------------------------------------

  let renderedDay = null;

  function dayOf(ts) {
    const d = new Date(ts);
    return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
  }

  function dayLabel(ts) {
    const d = new Date(ts);
    const today = new Date();
    const yesterday = new Date(Date.now() - 86400000);
    if (dayOf(ts) === dayOf(today.getTime())) return "Today";
    if (dayOf(ts) === dayOf(yesterday.getTime())) return "Yesterday";
    return d.toLocaleDateString(undefined, {weekday: "long", year: "numeric", month: "long", day: "numeric"});
  }

  function timeText(ts) {
    return new Date(ts).toLocaleTimeString(undefined, {hour: "2-digit", minute: "2-digit"});
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function hue(name) {
    let h = 2166136261;
    for (const ch of name) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
    return (h % 24) * 15;
  }

  function initials(name) {
    const digits = /\d{1,2}$/.exec(name);
    return ((name[0] || "?").toUpperCase() + (digits && digits.index > 0 ? digits[0] : "")).slice(0, 3);
  }

  function avatar(name) {
    const a = el("span", "avatar", initials(name));
    a.setAttribute("aria-hidden", "true");
    a.style.setProperty("--hue", hue(name));
    return a;
  }

  function highlighted(text) {
    const span = el("span", "text");
    const pattern = mentionPattern();
    const match = S.user ? pattern.exec(text) : null;
    if (!match) {
      span.textContent = text;
      return span;
    }
    const start = match.index + match[1].length;
    span.append(text.slice(0, start), el("mark", "", match[2]), text.slice(start + match[2].length));
    return span;
  }

  const STATE_TEXT = {sending: "sending…", waiting: "waiting for the connection", failed: "not delivered",
    queued: "delivered when they log in", unconfirmed: "not confirmed"};

  function renderItem(item) {
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
    body.append(meta, highlighted(item.text));
    li.append(avatar(item.from), body);
    if (item.state && item.state !== "sent") li.classList.add(item.state);
    item.el = li;
    return li;
  }

  function setItemState(item, state) {
    item.state = state;
    if (!item.el) return;
    item.el.classList.remove(...Object.keys(STATE_TEXT));
    if (state !== "sent") item.el.classList.add(state);
    const stateEl = item.el.querySelector(".state");
    if (stateEl) stateEl.textContent = STATE_TEXT[state] || "";
    const textEl = item.el.querySelector(".text");
    if (textEl && textEl.textContent !== item.text) textEl.replaceWith(highlighted(item.text));
    if (item.msgId) item.el.dataset.msgid = item.msgId;
  }

  function removeItem(c, item) {
    const index = c.items.indexOf(item);
    if (index >= 0) c.items.splice(index, 1);
    if (item.el) item.el.remove();
  }

  function appendItem(item, live) {
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

  function redraw() {
    const log = $("messages");
    log.replaceChildren();
    renderedDay = null;
    for (const item of S.current.items) appendItem(item, false);
    log.scrollTop = log.scrollHeight;
  }

  function switchTo(c) {
    if (!c) return;
    S.current = c;
    c.unread = 0;
    c.mention = false;
    redraw();
    renderHeader();
    renderSidebar();
    document.body.classList.remove("show-sidebar");
    $("menu").setAttribute("aria-expanded", "false");
  }

  function renderHeader() {
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

  function convButton(c) {
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

  function renderSidebar() {
    const rooms = [...S.convs.values()].filter((c) => c.kind === "room" && (c.joined || isAutomatic(c.name)));
    rooms.sort((a, b) => (a.name === WORLD ? -1 : b.name === WORLD ? 1 : a.name.localeCompare(b.name)));
    $("room-list").replaceChildren(...rooms.map(convButton));
    const others = [...S.otherRooms.entries()].filter(([name]) => !rooms.some((c) => c.name === name));
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
    $("menu").classList.toggle("has-unread", unread > 0);
  }

  function renderStatus() {
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

  function showBanner(text, action, onAction) {
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

  function hideBanner() {
    $("banner").hidden = true;
  }

  // -- the login form and the page's controls ----------------------------------

  function loginFailed(text) {
    $("login-error").textContent = text;
    $("login-button").disabled = false;
    $("login-view").hidden = false;
    $("chat-view").hidden = true;
  }

  function showChat() {
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

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const user = $("login-user").value.trim();
    if (!user) {
      $("login-error").textContent = "Enter your user name.";
      $("login-user").focus();
      return;
    }
    S.user = user;
    S.password = $("login-password").value;
    $("login-error").textContent = "";
    $("login-button").disabled = true;
    connect();
  });

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const box = $("message");
    const line = box.value.replace(/\s+$/, "");
    box.value = "";
    autosize();
    runLine(line);
  });

  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });

  function autosize() {
    const box = $("message");
    box.style.height = "auto";
    box.style.height = `${Math.min(box.scrollHeight, 160)}px`;
  }
  $("message").addEventListener("input", autosize);

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const room = $("join-input").value.trim().replace(/^#/, "");
    $("join-input").value = "";
    if (room) joinRoom(room);
  });

  $("dm-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const user = $("dm-input").value.trim().replace(/^@/, "");
    $("dm-input").value = "";
    if (user && user !== S.user) switchTo(conv("dm", user));
    renderSidebar();
  });

  $("popular-button").addEventListener("click", () => popular(POPULAR_DEFAULT));
  $("stats-button").addEventListener("click", () => stats(S.current && S.current.kind === "dm" ? S.current.name : S.user));
  $("leave-button").addEventListener("click", () => S.current && leaveRoom(S.current.name));
  $("logout").addEventListener("click", () => {
    S.state = "closed";
    if (S.ws) S.ws.close(1000);
    location.reload();
  });
  document.querySelector(".conversation").addEventListener("click", (event) => {
    if (document.body.classList.contains("show-sidebar") && !$("menu").contains(event.target)) {
      document.body.classList.remove("show-sidebar");
      $("menu").setAttribute("aria-expanded", "false");
    }
  });
  $("menu").addEventListener("click", () => {
    const shown = document.body.classList.toggle("show-sidebar");
    $("menu").setAttribute("aria-expanded", String(shown));
  });

  try {
    $("login-user").value = localStorage.getItem("chatnet:user") || "";
  } catch (e) { /* nothing remembered */ }
  ($("login-user").value ? $("login-password") : $("login-user")).focus();
})();
