// shelf's pages work without this script; it adds two conveniences:
// "/" focuses the query box, and #L10-L20 in a file view selects and
// scrolls to that range (shift-click a line number to extend it).
"use strict";

document.addEventListener("keydown", function (e) {
  var t = e.target;
  var typing = t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA");
  if (e.key === "/" && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
    var q = document.getElementById("q");
    if (q) {
      e.preventDefault();
      q.focus();
      q.select();
    }
  }
});

function lineRange() {
  var m = /^#L(\d+)(?:-L?(\d+))?$/.exec(window.location.hash);
  if (!m) return null;
  var a = parseInt(m[1], 10);
  var b = m[2] ? parseInt(m[2], 10) : a;
  return a <= b ? [a, b] : [b, a];
}

function selectLines() {
  var code = document.getElementById("code");
  if (!code) return;
  var old = code.querySelectorAll(".l.sel");
  for (var i = 0; i < old.length; i++) old[i].classList.remove("sel");
  var r = lineRange();
  if (!r) return;
  var first = null;
  for (var n = r[0]; n <= r[1] && n - r[0] < 100000; n++) {
    var el = document.getElementById("L" + n);
    if (!el) break;
    el.classList.add("sel");
    if (!first) first = el;
  }
  if (first) first.scrollIntoView({ block: "center" });
}

document.addEventListener("click", function (e) {
  var a = e.target;
  if (!a || !a.classList || !a.classList.contains("ln") || !e.shiftKey) return;
  var r = lineRange();
  var n = parseInt(a.textContent, 10);
  if (!r || isNaN(n)) return;
  e.preventDefault();
  var lo = Math.min(r[0], n), hi = Math.max(r[0], n);
  window.location.hash = "#L" + lo + "-L" + hi;
});

window.addEventListener("hashchange", selectLines);
document.addEventListener("DOMContentLoaded", selectLines);
