// Copy buttons: <button type="button" data-copy-target="#id" data-copied-label="Copied">.
// A static file, no inline script, so the Content-Security-Policy needs no exception.
(function () {
  "use strict";
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http (an air-gapped console): select the text and use the legacy command.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy-target]") : null;
    if (!button) { return; }
    var source = document.querySelector(button.getAttribute("data-copy-target"));
    if (!source) { return; }
    var original = button.textContent;
    copyText(source.textContent.trim()).then(function () {
      button.textContent = button.getAttribute("data-copied-label") || original;
      window.setTimeout(function () { button.textContent = original; }, 2000);
    }, function () {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    });
  });
  document.documentElement.classList.add("js-copy");
})();
