// Telemeeting console: live meeting updates over Server-Sent Events, and the meeting page's
// buttons submitted without leaving the page. Everything works as plain HTML forms too; the
// server renders (and escapes) every fragment this script puts in the page.
"use strict";

function showFlash(text) {
  const flash = document.getElementById("flash");
  if (!flash) {
    return;
  }
  flash.textContent = text;
  flash.hidden = !text;
}

// Forms marked data-async post in the background; the live stream shows what changed.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-async")) {
    return;
  }
  event.preventDefault();
  const buttons = form.querySelectorAll("button");
  buttons.forEach((button) => { button.disabled = true; });
  try {
    const response = await fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "X-Console-Fetch": "1" },
      credentials: "same-origin",
      redirect: "manual",
    });
    if (response.ok || response.type === "opaqueredirect") {
      showFlash("");
      if (form.hasAttribute("data-reset")) {
        form.reset();
      }
    } else {
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const heading = page.querySelector("[data-error] h1");
      showFlash(heading ? heading.textContent : String(response.status));
    }
  } catch (error) {
    showFlash(String(error));
  } finally {
    buttons.forEach((button) => { button.disabled = false; });
  }
});

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
      state.textContent = update.stateLabel || update.state;
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

// "Back" on an error page returns to the form that was refused (its link is the fallback).
document.addEventListener("click", (event) => {
  const link = event.target instanceof Element ? event.target.closest("[data-back]") : null;
  if (link && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});
