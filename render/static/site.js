/* Estate Desk: small page behaviours that work from file:// as well as over HTTP. */
(function () {
  "use strict";
  // A link to a collapsed <details> section (the department index) opens it.
  function openTarget() {
    if (!location.hash) return;
    var el = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
  }
  window.addEventListener("hashchange", openTarget);
  document.addEventListener("DOMContentLoaded", openTarget);
})();
