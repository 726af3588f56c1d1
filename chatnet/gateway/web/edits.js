// Editing and deleting messages: the "Edit" and "Delete" buttons (one's own
// messages; a room's owner and admins delete any), the `edit` and `delete`
// requests, and the `messageEdited` / `messageDeleted` frames every member gets.
import {S} from "./state.js";
import {request} from "./connection.js";
import {el, note, setItemText} from "./view.js";

export const MODERATORS = new Set(["owner", "admin"]);

// whether the user may delete a message of someone else in the conversation
export function moderates(c) {
  return Boolean(c && c.kind === "room" && MODERATORS.has(S.roles.get(c.name)));
}

// the user's role in a room (from joinRoom, listRooms, createRoom or a role
// notice): the messages shown there get the buttons it allows
export function setRole(room, role) {
  if (typeof role !== "string" || S.roles.get(room) === role) return;
  S.roles.set(room, role);
  const c = S.current;
  if (!c || c.kind !== "room" || c.name !== room) return;
  for (const item of c.items) if (item.type === "msg" && !item.own) setItemText(item);
}

export function canEdit(item) {
  return item.own && Boolean(item.msgId) && !item.deleted && item.state === "sent";
}

export function canDelete(c, item) {
  return Boolean(item.msgId) && !item.deleted && (item.own ? item.state === "sent" || item.state === "queued" : moderates(c));
}

// the buttons of a message (an empty list if none apply)
export function actions(c, item) {
  const buttons = [];
  if (canEdit(item)) buttons.push(button("Edit", `Edit this message`, () => startEdit(c, item)));
  if (canDelete(c, item)) {
    const b = button("Delete", "Delete this message", () => {
      // the first click asks, the second deletes
      if (b.dataset.armed) return remove(c, item);
      b.dataset.armed = "1";
      b.textContent = "Delete?";
      b.classList.add("armed");
      setTimeout(() => {
        if (!b.isConnected) return;
        delete b.dataset.armed;
        b.textContent = "Delete";
        b.classList.remove("armed");
      }, 4000);
      return undefined;
    });
    buttons.push(b);
  }
  return buttons;
}

function button(text, label, onClick) {
  const b = el("button", `msg-action ${text.toLowerCase()}`, text);
  b.type = "button";
  b.setAttribute("aria-label", label);
  b.addEventListener("click", (event) => {
    event.stopPropagation();
    onClick();
  });
  return b;
}

function startEdit(c, item) {
  if (!item.el) return;
  const textEl = item.el.querySelector(".text");
  if (!textEl || item.el.querySelector(".edit-box")) return;
  const form = el("form", "edit-form");
  const box = el("textarea", "edit-box");
  box.value = item.text;
  box.rows = Math.min(6, item.text.split("\n").length);
  box.setAttribute("aria-label", "Edited message");
  const save = el("button", "save", "Save");
  save.type = "submit";
  const cancel = el("button", "cancel", "Cancel");
  cancel.type = "button";
  form.append(box, save, cancel);
  const done = () => form.replaceWith(textEl);
  cancel.addEventListener("click", done);
  box.addEventListener("keydown", (event) => {
    if (event.key === "Escape") done();
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = box.value.replace(/\s+$/, "");
    done();
    if (text && text !== item.text) edit(c, item, text);
  });
  textEl.replaceWith(form);
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

export function edit(c, item, text) {
  request("edit", Object.assign(targetOf(c), {msgId: item.msgId, message: text}), c);
}

export function remove(c, item) {
  request("delete", Object.assign(targetOf(c), {msgId: item.msgId}), c);
}

function targetOf(c) {
  return c.kind === "room" ? {roomName: c.name} : {to: c.name};
}

// the item of a message id, in whichever conversation it is
export function findItem(msgId) {
  for (const c of S.convs.values()) {
    const item = c.items.find((i) => i.type === "msg" && i.msgId === msgId);
    if (item) return [c, item];
  }
  return [null, null];
}

export function onEdited(d) {
  if (typeof d.msgId !== "string") return;
  const [, item] = findItem(d.msgId);
  if (!item || item.deleted) return;
  if (typeof d.message === "string") item.text = d.message;
  item.edited = Number.isInteger(d.editedAt) ? d.editedAt : Date.now();
  setItemText(item);
}

export function onDeleted(d) {
  if (typeof d.msgId !== "string") return;
  const [, item] = findItem(d.msgId);
  if (!item) return;
  item.deleted = true;
  item.text = "";
  item.deletedBy = typeof d.by === "string" ? d.by : null;
  setItemText(item);
}

// the answer to one's own edit or delete (the frame to everyone may come first)
export function onAnswer(action, d, re) {
  const entry = S.pending.get(re);
  S.pending.delete(re);
  if (action === "edit") onEdited(Object.assign({}, entry ? entry.data : {}, d));
  else onDeleted(Object.assign({by: S.user}, entry ? entry.data : {}, d));
}

export function failed(entry, message) {
  note(`cannot ${entry.action} the message: ${message}`, "error", entry.conv);
}

