// Tabs (WAI-ARIA tabs pattern) and copy buttons. Without JavaScript every panel stays visible
// and the tab lists stay hidden, so nothing depends on this file.
(function () {
  "use strict";

  function setup(box) {
    var list = box.querySelector(":scope > [data-tablist]");
    if (!list) { return; }
    var tabs = Array.prototype.slice.call(list.querySelectorAll('[role="tab"]'));
    function select(tab, focus) {
      tabs.forEach(function (t) {
        var on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
      });
      if (focus) { tab.focus(); }
    }
    tabs.forEach(function (tab, i) {
      tab.addEventListener("click", function () { select(tab, false); });
      tab.addEventListener("keydown", function (e) {
        var next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
        if (next === undefined) { return; }
        e.preventDefault();
        select(tabs[(next + tabs.length) % tabs.length], true);
      });
    });
    list.hidden = false;
    box.querySelectorAll("[data-tab-heading]").forEach(function (h) { h.hidden = true; });
    select(tabs.filter(function (t) { return t.getAttribute("aria-selected") === "true"; })[0] || tabs[0], false);
    box.selectTab = function (id) { tabs.forEach(function (t) { if (t.id === id) { select(t, false); } }); };
  }

  document.querySelectorAll("[data-tabs]").forEach(setup);

  // "Use this learnware" lives in the Model card tab: make sure that tab is showing.
  document.querySelectorAll("[data-open-tab]").forEach(function (link) {
    link.addEventListener("click", function () {
      var box = document.querySelector("[data-tabs]");
      if (box && box.selectTab) { box.selectTab("tab-card"); }
    });
  });

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) { return; }
    button.hidden = false;
    button.setAttribute("aria-label", "Copy the code");
    button.addEventListener("click", function () {
      var code = button.parentNode.querySelector("code").textContent;
      navigator.clipboard.writeText(code).then(function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 1500);
      });
    });
  });
})();
