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
  async function refresh() {
    timer = null;
    if (busy) { timer = setTimeout(refresh, 250); return; }
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
  for (const name of ["run", "step"]) source.addEventListener(name, soon);
  source.addEventListener("end", () => { soon(); source.close(); if (badge) badge.hidden = true; });
  source.onopen = () => { if (badge) badge.hidden = false; };
  source.onerror = () => { if (badge) badge.hidden = true; };
})();
