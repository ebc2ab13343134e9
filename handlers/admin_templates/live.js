// Huddle admin: refresh the parts of a page marked data-poll, without reloading it (no build step).
(function () {
  "use strict";
  var every = 2000;
  function refresh(el) {
    fetch(el.getAttribute("data-poll"), {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null && html !== el.getAttribute("data-last")) {
          el.setAttribute("data-last", html);
          el.innerHTML = html;
          el.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () { /* offline for a moment: try again next time */ });
  }
  document.querySelectorAll("[data-poll]").forEach(function (el) {
    setInterval(function () { refresh(el); }, every);
  });
})();
