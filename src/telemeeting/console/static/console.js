// Telemeeting console: live meeting updates over Server-Sent Events. Everything else is plain
// HTML forms; the server renders (and escapes) every fragment this script puts in the page.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (!live || !window.EventSource) {
    return;
  }
  const members = document.getElementById("members");
  const events = document.getElementById("events");
  const state = document.getElementById("meeting-state");
  const controls = document.getElementById("meeting-controls");
  const source = new EventSource(live.dataset.live);
  source.addEventListener("open", () => live.classList.add("connected"));
  source.addEventListener("error", () => live.classList.remove("connected"));
  source.addEventListener("meeting", (message) => {
    const update = JSON.parse(message.data);
    members.innerHTML = update.members;
    events.innerHTML = update.events;
    if (state.dataset.meetingState !== update.state) {
      state.dataset.meetingState = update.state;
      state.textContent = update.state;
    }
    if (update.state === "ended") {
      if (controls) {
        controls.hidden = true;
      }
      source.close();
      live.classList.remove("connected");
    }
  });
});
