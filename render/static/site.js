/* Estate Desk: small page behaviours that work from file:// as well as over HTTP. */
(function () {
  "use strict";
  // Home page: the department chips filter the category lists (without JavaScript every list shows).
  function setupDepartmentFilter() {
    var bar = document.querySelector("[data-dept-filter]");
    if (!bar) return;
    bar.hidden = false;
    bar.addEventListener("click", function (event) {
      var chip = event.target.closest("button[data-dept]");
      if (!chip) return;
      var dept = chip.getAttribute("data-dept");
      bar.querySelectorAll("button[data-dept]").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b === chip));
      });
      document.querySelectorAll(".cat-group").forEach(function (group) {
        var shown = 0;
        group.querySelectorAll("li[data-dept]").forEach(function (row) {
          row.hidden = dept !== "" && row.getAttribute("data-dept") !== dept;
          if (!row.hidden) shown += 1;
        });
        group.hidden = shown === 0;
      });
    });
  }
  document.addEventListener("DOMContentLoaded", setupDepartmentFilter);
})();
