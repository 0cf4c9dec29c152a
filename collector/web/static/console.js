// branchwatch console: deadline countdowns tick every second between live
// updates. The server's clock (a drill may shift it) is the reference:
// each live fragment carries data-now, the server's time when it was drawn.
(function () {
  "use strict";
  var offset = 0;   // server time minus this browser's time, in ms

  function syncFrom(el) {
    var now = el && el.getAttribute("data-now");
    if (now) { offset = parseInt(now, 10) - Date.now(); }
  }

  function words(lang, ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    var m = Math.floor(s % 3600 / 60), sec = s % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    if (lang === "zh") {
      if (d) { return d + "天" + h + "小时"; }
      if (h) { return h + "小时" + two(m) + "分"; }
      return m ? m + "分" + two(sec) + "秒" : sec + "秒";
    }
    if (d) { return d + " d " + h + " h"; }
    if (h) { return h + " h " + two(m) + " min"; }
    return m ? m + " min " + two(sec) + " s" : sec + " s";
  }

  function tick() {
    var lang = document.body.getAttribute("data-lang");
    var now = Date.now() + offset;
    document.querySelectorAll(".countdown[data-due]").forEach(function (el) {
      var left = parseInt(el.getAttribute("data-due"), 10) - now;
      var title = (el.getAttribute("title") || "").split(" · ")[0];
      var overdue = lang === "zh" ? "已超时" : "overdue";
      var inWord = lang === "zh" ? "剩余" : "in";
      el.textContent = title + ": " + (left >= 0 ? inWord + " " + words(lang, left)
                                                 : overdue + " " + words(lang, -left));
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("soon", left >= 0 && left < 900000);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    syncFrom(document.getElementById("live"));
    tick();
    setInterval(tick, 1000);
  });
  document.addEventListener("htmx:afterSwap", function (e) {
    syncFrom(document.getElementById("live"));
    tick();
  });
})();

// The drill form (drills.html): a region scenario asks for the region, a branch
// scenario for the branch (domain.md §5). Without script both fields show and
// the collector says which one was missing.
(function () {
  "use strict";
  function scopeOf(select) {
    var opt = select.options[select.selectedIndex];
    return opt ? opt.getAttribute("data-scope") : null;
  }
  function show(form) {
    var scope = scopeOf(form.querySelector("select[name=scenario]"));
    form.querySelectorAll("[data-scope-field]").forEach(function (p) {
      var field = p.getAttribute("data-scope-field");
      // A region drill may still name one branch of the region: only the
      // region field hides for a branch scenario.
      var hide = scope === "branch" && field === "region";
      p.hidden = hide;
      p.querySelectorAll("select").forEach(function (s) {
        s.disabled = hide;
        s.required = !!scope && field === scope;
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("drill-form");
    if (!form) { return; }
    var scenario = form.querySelector("select[name=scenario]");
    scenario.addEventListener("change", function () { show(form); });
    show(form);
  });
})();
