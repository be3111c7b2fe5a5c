// gridrisk: small keyboard and pointer conveniences; every page works without this file.
"use strict";
(function () {
  // In the risk list, j / k move the focus to the next / previous customer link (Enter opens it).
  const links = Array.from(document.querySelectorAll("table.risk a.customer"));
  if (links.length) {
    document.addEventListener("keydown", function (event) {
      const target = event.target;
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement) return;
      if (event.key !== "j" && event.key !== "k") return;
      const at = links.indexOf(document.activeElement);
      const next = event.key === "j" ? Math.min(at + 1, links.length - 1) : Math.max(at - 1, 0);
      links[at < 0 ? 0 : next].focus();
      event.preventDefault();
    });
    // A click anywhere on a row opens its customer, as the link in the row does.
    document.querySelectorAll("table.risk tbody tr").forEach(function (row) {
      row.addEventListener("click", function (event) {
        if (event.target.closest("a, button, input, select")) return;
        if (window.getSelection && String(window.getSelection())) return; // let people copy text
        const link = row.querySelector("a.customer");
        if (link) window.location.assign(link.href);
      });
    });
  }
  // Collapsed tables open when the page is printed, so a printout holds every month.
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
})();
