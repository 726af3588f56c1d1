// The composer's lines: messages and /commands.
import {$, POPULAR_DEFAULT, POPULAR_MAX, S, WORLD, conv, isAutomatic, roomKey} from "./state.js";
import {connect, onClose, request} from "./connection.js";
import {MUTE_MAX, parseDuration} from "./texts.js";
import {edit, remove} from "./edits.js";
import {loadEarlier} from "./history.js";
import {sent} from "./typing.js";
import {add, hideBanner, note, renderSidebar, switchTo} from "./view.js";

export const COMMANDS = [
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
  ["/history", "load earlier messages of the conversation (or scroll to the top)"],
  ["/edit <words...>", "replace the text of your last message here"],
  ["/delete", "delete your last message here (the Delete button deletes any of yours)"],
  ["/stats <user>", "how long a user has been online, and on which node"],
  ["/popular [n]", "the n most used words right now (default 10)"],
  ["/whoami", "who and where you are"],
  ["/reconnect", "connect again through the gateway"],
  ["/help", "list the commands"],
  ["<words...>", "a line without / goes to the current conversation (//x sends /x)"],
];


export function moderate(action, args, extra) {
  const room = (args[0] || "").replace(/^room:/, "").replace(/^#/, "");
  const user = (args[1] || "").replace(/^@/, "");
  const c = S.convs.get(roomKey(room));
  return request(action, Object.assign({roomName: room, username: user}, extra), c && c.joined ? c : S.current);
}

// -- commands ---------------------------------------------------------------

export function runLine(line) {
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
      // world (and the user's alliance, once known) need no /join
      if (room === WORLD) conv("room", WORLD).joined = true;
      const c = room && S.convs.get(roomKey(room));
      if (!c || !c.joined) return note(room ? `you are not in #${room}: /join ${room}` : "usage: /room <room>", "error");
      return switchTo(c);
    }
    case "rooms":
      return request("listRooms", {});
    case "history":
      if (!loadEarlier(S.current)) note("no earlier messages to load here", "system");
      return undefined;
    case "edit": {
      if (!text) return usage("/edit <words...>");
      const item = lastOwn(S.current);
      if (!item) return note("you have no message here to edit", "error");
      return edit(S.current, item, text);
    }
    case "delete": {
      if (args.length) return usage("/delete");
      const item = lastOwn(S.current);
      if (!item) return note("you have no message here to delete", "error");
      return remove(S.current, item);
    }
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

export function usage(text) {
  note(`usage: ${text}`, "error");
}

export function say(c, text) {
  if (!c) return;
  const data = c.kind === "room"
    ? {roomName: c.name, isGroup: true, message: text, ts: Date.now(), format: "text"}
    : {to: c.name, isGroup: false, message: text, ts: Date.now(), format: "text"};
  const item = {type: "msg", from: S.user, text, ts: Date.now(), own: true, state: "sending", mention: false};
  add(c, item);
  request("chat", data, c, item);
  sent(c);
  renderSidebar();
}

// the user's last message in a conversation that the server confirmed (and not deleted)
export function lastOwn(c) {
  if (!c) return null;
  for (let i = c.items.length - 1; i >= 0; i -= 1) {
    const item = c.items[i];
    if (item.type === "msg" && item.own && item.msgId && !item.deleted) return item;
  }
  return null;
}

export function joinRoom(room) {
  const c = S.convs.get(roomKey(room));
  if (c && c.joined) {
    switchTo(c);
    return;
  }
  const target = conv("room", room);
  target.history = 0;
  request("joinRoom", {roomName: room, username: S.user}, target);
}

export function leaveRoom(room) {
  if (isAutomatic(room)) return note(`#${room} is automatic: it cannot be left`, "error");
  const c = S.convs.get(roomKey(room));
  if (!c || !c.joined) return note(`you are not in #${room}`, "error");
  return request("leaveRoom", {roomName: room}, c);
}

export function stats(user) {
  request("userInfo", {username: user});
}

export function popular(n) {
  request("popular", {n});
}
