// brittle report: heat-map metric toggle, gallery filters, lightbox.
// Reads only attributes and text the page already holds; writes with textContent and
// setAttribute, never innerHTML, so no data can become markup.
(function () {
  "use strict";

  function all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }

  // ---- heat map: colour the cells by rPC, consistency or affected share
  var metricButtons = all(".segmented button[data-metric]");
  function setMetric(metric) {
    all(".heat-cell").forEach(function (cell) {
      var rect = cell.querySelector("rect");
      var text = cell.querySelector("text");
      rect.setAttribute("fill", cell.getAttribute("data-fill-" + metric));
      text.setAttribute("fill", cell.getAttribute("data-ink-" + metric));
      text.textContent = cell.getAttribute("data-label-" + metric);
    });
    metricButtons.forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-metric") === metric));
    });
    all(".heat-legend, .heat-explain").forEach(function (el) {
      el.hidden = el.getAttribute("data-metric") !== metric;
    });
  }
  metricButtons.forEach(function (b) {
    b.addEventListener("click", function () {
      if (!b.disabled) setMetric(b.getAttribute("data-metric"));
    });
  });

  // ---- gallery filters
  var items = all(".gallery-item");
  var byModel = document.getElementById("filter-model");
  var byPerturbation = document.getElementById("filter-perturbation");
  var count = document.getElementById("gallery-count");
  var empty = document.getElementById("gallery-empty");
  function applyFilters() {
    var m = byModel ? byModel.value : "";
    var p = byPerturbation ? byPerturbation.value : "";
    var shown = 0;
    items.forEach(function (item) {
      var ok = (!m || item.getAttribute("data-model") === m) &&
               (!p || item.getAttribute("data-perturbation") === p);
      item.hidden = !ok;
      if (ok) shown += 1;
    });
    if (count) {
      count.textContent = shown === items.length ?
        items.length + " pairs" : shown + " of " + items.length + " pairs";
    }
    if (empty) empty.hidden = shown > 0;
  }
  [byModel, byPerturbation].forEach(function (select) {
    if (select) select.addEventListener("change", applyFilters);
  });

  // ---- lightbox: click a pair to enlarge; Esc, a click or the button closes it
  var box = document.getElementById("lightbox");
  var boxImg = document.getElementById("lightbox-img");
  var boxCaption = document.getElementById("lightbox-caption");
  var current = -1;
  var opener = null;
  function visible() {
    return items.filter(function (item) { return !item.hidden; });
  }
  function show(item) {
    var img = item.querySelector("img");
    var caption = item.querySelector("figcaption");
    boxImg.setAttribute("src", img.getAttribute("src"));
    boxImg.setAttribute("alt", img.getAttribute("alt") || "");
    var parts = caption ? Array.prototype.map.call(caption.children, function (c) {
      return c.textContent.replace(/\s+/g, " ").trim();
    }) : [];
    boxCaption.textContent = parts.join("  —  ");
    current = visible().indexOf(item);
  }
  function open(item) {
    if (!box) return;
    opener = document.activeElement;
    show(item);
    box.hidden = false;
    document.body.style.overflow = "hidden";
    box.querySelector(".lightbox-close").focus();
  }
  function close() {
    if (!box || box.hidden) return;
    box.hidden = true;
    boxImg.removeAttribute("src");
    document.body.style.overflow = "";
    if (opener && opener.focus) opener.focus();
  }
  function step(delta) {
    var list = visible();
    if (!list.length) return;
    show(list[(current + delta + list.length) % list.length]);
  }
  items.forEach(function (item) {
    var button = item.querySelector(".zoom");
    if (button) button.addEventListener("click", function () { open(item); });
  });
  if (box) {
    box.addEventListener("click", close);
    document.addEventListener("keydown", function (event) {
      if (box.hidden) return;
      if (event.key === "Escape") { close(); event.preventDefault(); }
      else if (event.key === "ArrowRight") { step(1); event.preventDefault(); }
      else if (event.key === "ArrowLeft") { step(-1); event.preventDefault(); }
    });
  }
})();
