// The chatnet web client: one page, plain JavaScript modules, no build step.
// It asks the gateway (GET /server) for a node and speaks docs/protocol.md
// over a WebSocket, with the ack, offline and resume extensions (and asks for
// multi and live, which a server grants only if it has them). This module wires the
// page's controls; the others: state, connection, frames, commands, view, texts.
import {$, POPULAR_DEFAULT, S, conv} from "./state.js";
import {connect} from "./connection.js";
import {joinRoom, leaveRoom, popular, runLine, stats} from "./commands.js";
import {renderSidebar, switchTo} from "./view.js";
import {onScroll, userScrolled} from "./history.js";
import {askPermission, viewed} from "./notify.js";
import {typed} from "./typing.js";

// -- the login form and the page's controls ----------------------------------

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
  // a user action: the moment a browser lets a page ask for notifications
  askPermission();
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
$("message").addEventListener("input", () => {
  autosize();
  typed($("message").value);
});

// a narrow screen gets a placeholder that fits it
const narrow = window.matchMedia("(max-width: 760px)");
function placeholder() {
  $("message").placeholder = narrow.matches ? "Message… (/help)" : "Write a message… (/help for commands)";
}
placeholder();
narrow.addEventListener("change", placeholder);

$("messages").addEventListener("scroll", onScroll, {passive: true});
for (const kind of ["wheel", "touchmove", "keydown", "pointerdown"]) {
  $("messages").addEventListener(kind, userScrolled, {passive: true});
}

// back to the page: what is shown is read
document.addEventListener("visibilitychange", () => {
  if (document.hidden || !S.current) return;
  S.current.unread = 0;
  S.current.mention = false;
  renderSidebar();
  viewed();
});

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
