// A chatnet client on Node's ws with its default options (it offers
// permessage-deflate), speaking the protocol as the old Node.js clients do.
//
//   node ws_client.js URL USERNAME PEER
//
// Logs in as USERNAME, asks `popular` with n as a string (as the old client
// sends what the user typed), prints one JSON line {"ready": true,
// "extensions": ...}, sends a chat to PEER, waits for a chat from PEER,
// closes and exits 0. Any error or a wait over 20 s exits non-zero.
'use strict';
const WebSocket = require('ws');

const [url, username, peer] = process.argv.slice(2);
let nextId = Date.now() * 1000;
const ws = new WebSocket(url);

function send(action, data) {
  ws.send(JSON.stringify({ id: nextId++, action, data }));
}

function fail(why) {
  console.error(why);
  process.exit(1);
}

const timer = setTimeout(() => fail('timed out'), 20000);

ws.on('open', () => send('login', { username }));
ws.on('error', (err) => fail(`error: ${err.message}`));
ws.on('close', (code) => {
  clearTimeout(timer);
  process.exit(code === 1000 ? 0 : 3);
});
ws.on('message', (raw) => {
  const frame = JSON.parse(raw.toString());
  if (frame.action === 'error') fail(`error frame: ${JSON.stringify(frame.data)}`);
  if (frame.action === 'login') {
    send('popular', { n: '2' });
  } else if (frame.action === 'popular') {
    if (!Array.isArray(frame.data.words)) fail(`popular: ${JSON.stringify(frame)}`);
    console.log(JSON.stringify({ ready: true, extensions: ws.extensions }));
    send('chat', { to: peer, message: `hello from ${username}` });
  } else if (frame.action === 'chat' && frame.data.from === peer) {
    console.log(JSON.stringify({ chat: frame.data.message }));
    ws.close(1000);
  }
});
