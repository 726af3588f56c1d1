// One process of the Socket.IO peer that chatnet-bench compares chatnet with
// (bench/README.md, "The Socket.IO peer"): Socket.IO 4 with the official Redis
// adapter, WebSocket transport only, no compression, nothing stored.
//
//   node server.js --port 3001 --redis redis://127.0.0.1:6379 --name peer1
//
// The chat it serves is what the load needs, with chatnet's frames as Socket.IO
// events:
//   login    {username}                        ack {username, sessionId, nodeId}
//   chat     {to, message, ts?, format?}       the user's room "user:<to>" gets
//                                              chat {from, roomName: "", message, ts, format}
//   chat     {roomName, isGroup, message, ...} every member of "room:<name>" gets
//                                              chat {from, roomName, message, ts, format},
//                                              the sender too; not a member: error 403
//   joinRoom {roomName}                        ack {roomName}
// Anything before login, or a bad request, is answered with the event
// error {code, message, ext}. A direct message to a user who is not online is
// dropped silently: the adapter has no presence (asking every process would
// be a round trip per message).
"use strict";

const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = parseInt(option("port", "3000"), 10);
const host = option("host", "127.0.0.1");
const redisUrl = option("redis", "redis://127.0.0.1:6379");
const nodeId = option("name", `peer${port}`);

function error(socket, code, message, ext) {
  socket.emit("error", { code, message, ext });
}

async function main() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on("error", (e) => console.error(`${nodeId}: redis: ${e.message}`));
  sub.on("error", (e) => console.error(`${nodeId}: redis: ${e.message}`));
  await Promise.all([pub.connect(), sub.connect()]);

  const server = http.createServer((req, res) => {
    res.writeHead(404);
    res.end();
  });
  const io = new Server(server, {
    transports: ["websocket"],
    perMessageDeflate: false,
    httpCompression: false,
    serveClient: false,
    adapter: createAdapter(pub, sub),
  });

  io.on("connection", (socket) => {
    let username = null;

    socket.on("login", (data, ack) => {
      if (!data || typeof data.username !== "string" || !data.username) {
        return error(socket, 400, "login needs a username", "login");
      }
      if (username !== null) socket.leave(`user:${username}`);
      username = data.username;
      socket.join(`user:${username}`);
      if (typeof ack === "function") ack({ username, sessionId: socket.id, nodeId });
    });

    socket.on("joinRoom", (data, ack) => {
      if (username === null) return error(socket, 401, "log in first", "joinRoom");
      if (!data || typeof data.roomName !== "string" || !data.roomName) {
        return error(socket, 400, "joinRoom needs a roomName", "joinRoom");
      }
      socket.join(`room:${data.roomName}`);
      if (typeof ack === "function") ack({ roomName: data.roomName });
    });

    socket.on("chat", (data) => {
      if (username === null) return error(socket, 401, "log in first", "chat");
      if (!data || typeof data.message !== "string") {
        return error(socket, 400, "chat needs a message", "chat");
      }
      const ts = Number.isInteger(data.ts) ? data.ts : Date.now();
      const format = typeof data.format === "string" ? data.format : "text";
      if (data.isGroup && typeof data.roomName === "string") {
        const room = `room:${data.roomName}`;
        if (!socket.rooms.has(room)) {
          return error(socket, 403, `you are not a member of room ${data.roomName}`, "chat");
        }
        io.to(room).emit("chat", { from: username, roomName: data.roomName, message: data.message, ts, format });
      } else if (typeof data.to === "string" && data.to) {
        io.to(`user:${data.to}`).emit("chat", { from: username, roomName: "", message: data.message, ts, format });
      } else {
        error(socket, 400, "chat needs to or roomName", "chat");
      }
    });
  });

  server.listen(port, host, () => console.log(`${nodeId} listening on ${host}:${port}`));

  const stop = () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e) => {
  console.error(`${nodeId}: ${e.stack || e}`);
  process.exit(1);
});
