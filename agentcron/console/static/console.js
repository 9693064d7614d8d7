// agentcron console: refresh the page's live part every few seconds, no reload, no build step.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var every = 2000;
  function busy() {
    var el = document.activeElement;
    return el && (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA");
  }
  function refresh() {
    if (document.hidden || busy()) { return schedule(); }
    fetch(window.location.href, { headers: { "X-Console-Live": "1" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) { if (html !== null && html !== live.innerHTML) { live.innerHTML = html; } })
      .catch(function () { /* offline for a moment: try again later */ })
      .then(schedule);
  }
  function schedule() { window.setTimeout(refresh, every); }
  schedule();
})();
