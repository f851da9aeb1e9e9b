// Relay's dashboard: the little script it needs (no framework, nothing fetched elsewhere).
// Pages work without it; it adds partial updates of the request log, confirmations and copy.
"use strict";
(function () {
  // A form with data-partial="#target": its GET results replace the target's content.
  function swap(form, target) {
    var query = new URLSearchParams(new FormData(form));
    Array.from(query.keys()).forEach(function (k) { if (!query.get(k)) { query.delete(k); } });
    var shown = query.toString();
    query.set("partial", "1");
    return fetch(form.action + "?" + query.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        target.innerHTML = html;
        history.replaceState(null, "", form.action + (shown ? "?" + shown : ""));
      });
  }
  document.querySelectorAll("form[data-partial]").forEach(function (form) {
    var target = document.querySelector(form.dataset.partial);
    if (!target) { return; }
    form.addEventListener("submit", function (e) { e.preventDefault(); swap(form, target); });
    form.addEventListener("change", function (e) { if (e.target.id !== "live") { swap(form, target); } });
    var live = form.querySelector("[data-refresh]"), timer = null;
    if (live) {
      live.addEventListener("change", function () {
        if (timer) { clearInterval(timer); timer = null; }
        if (live.checked) { timer = setInterval(function () { swap(form, target); }, 1000 * Number(live.dataset.refresh)); }
      });
    }
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) { if (!confirm(form.dataset.confirm)) { e.preventDefault(); } });
  });
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = document.querySelector(button.dataset.copy).textContent;
      if (navigator.clipboard) { navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; }); }
    });
  });
})();
