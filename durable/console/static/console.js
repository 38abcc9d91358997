// durable console: live updates and confirmations. Pages work without this file.
"use strict";

// Forms with data-confirm ask before they submit (cancel, terminate).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});

// A page's #live part follows the server-sent events of its topic: on each event the
// part is fetched again (debounced) and swapped in, so what is shown is always what the
// server renders, escaped the same way.
(function live() {
  const part = document.getElementById("live");
  const topic = part && part.dataset.live;
  if (!topic || !window.EventSource) return;
  const badge = document.getElementById("live-state");
  const source = new EventSource("/v1/events?topic=" + encodeURIComponent(topic));
  let timer = null;
  let busy = false;
  // Someone typing in a form of the live part (a signal's value) is never interrupted:
  // the swap waits until the form is left alone, empty, or sent.
  function typing() {
    for (const field of part.querySelectorAll("input:not([type=hidden]), textarea, select")) {
      if (field === document.activeElement || field.value) return true;
    }
    return false;
  }
  async function refresh() {
    timer = null;
    if (busy || typing()) { timer = setTimeout(refresh, 500); return; }
    busy = true;
    try {
      const response = await fetch(window.location.href, {
        headers: { "X-Durable-Fragment": "1" }, credentials: "same-origin",
      });
      if (response.ok) {
        part.innerHTML = await response.text();
        part.dispatchEvent(new CustomEvent("durable:refreshed", { bubbles: true }));
      }
    } finally {
      busy = false;
    }
  }
  function soon() { if (timer === null) timer = setTimeout(refresh, 150); }
  // A run's stream opens with the run as it is now: only a change since the page was
  // rendered needs a refresh.
  let first = topic.startsWith("run:");
  source.addEventListener("run", (event) => {
    if (first) {
      first = false;
      const shown = part.querySelector("[data-run-status]");
      const now = JSON.parse(event.data);
      if (shown && now.status === shown.dataset.runStatus &&
          String(now.history_length) === shown.dataset.historyLength) return;
    }
    soon();
  });
  source.addEventListener("step", soon);
  source.addEventListener("end", () => { soon(); source.close(); if (badge) badge.hidden = true; });
  source.onopen = () => { if (badge) badge.hidden = false; };
  source.onerror = () => { if (badge) badge.hidden = true; };
})();
