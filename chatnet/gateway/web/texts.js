// Texts and parsing, as the terminal client words them.
import {S, plural} from "./state.js";

export const MUTE_MAX = 7 * 24 * 3600;
export const UNITS = {"": 1, s: 1, m: 60, h: 3600, d: 86400};

export function parseDuration(word) {
  const m = /^(\d{1,9})([smhd]?)$/.exec(String(word).trim().toLowerCase());
  return m ? Number(m[1]) * UNITS[m[2]] : null;
}

// -- texts (as the terminal client words them) ----------------------------------

export function pad(n) {
  return String(n).padStart(2, "0");
}

export function duration(seconds) {
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return `${pad(d)}d ${pad(h)}h ${pad(m)}m ${pad(s)}s`;
}

export function statsText(d) {
  const user = d.username || "?";
  if (d.isOnline === false) return `${user}: offline`;
  let onlineFor = d.onlineFor;
  if (typeof onlineFor !== "string" || !onlineFor.trim()) {
    onlineFor = Number.isFinite(d.loginTime) ? duration((Date.now() - d.loginTime) / 1000) : "?";
  }
  const where = Array.isArray(d.nodes) && d.nodes.length > 1 ? `nodes ${d.nodes.join(", ")}` : `node ${d.nodeId || "?"}`;
  return `${user}: online ${onlineFor} on ${where}`;
}

export function popularLines(words) {
  const list = Array.isArray(words) ? words : [];
  const pairs = [];
  for (let i = 0; i + 1 < list.length; i += 2) pairs.push([String(list[i]), String(list[i + 1])]);
  if (!pairs.length) return ["popular words: none in the recent window"];
  const width = Math.max(...pairs.map(([w]) => w.length));
  return [`popular words (top ${pairs.length}):`,
    ...pairs.map(([w, c], i) => `${String(i + 1).padStart(3)}. ${w.padEnd(width)}  ${c}`)];
}

export function offlineText(delivered, dropped) {
  let text = `${plural(delivered, "message")} received while you were offline`;
  if (dropped) text += `; ${dropped} older one${dropped === 1 ? " was" : "s were"} dropped`;
  return text;
}

// whether what was delivered (profanity masked with *) is what was sent
export function textMatches(sent, got) {
  sent = String(sent).trim();
  got = String(got).trim();
  if (sent === got) return true;
  if ([...sent].length !== [...got].length) return false;
  const a = [...sent];
  return [...got].every((ch, i) => ch === a[i] || ch === "*");
}

export function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function mentionPattern() {
  return new RegExp(`(^|[^\\w])(@?${escapeRegExp(S.user || "")})(?![\\w])`, "i");
}

export function mentions(text) {
  return Boolean(S.user) && mentionPattern().test(text);
}
