// Live refresh: re-fetch this page every N seconds and swap its live region, while the
// "live" box is ticked, the tab is visible and no form field has the focus.
(function () {
  var box = document.getElementById("live");
  if (!box) return;
  var seconds = parseFloat(box.dataset.seconds) || 5;
  setInterval(function () {
    var focused = document.activeElement && document.activeElement.form;
    if (!box.checked || document.hidden || focused) return;
    fetch(location.href, { headers: { "X-Live": "1" } }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (!html) return;
      var fresh = new DOMParser().parseFromString(html, "text/html");
      var region = fresh.getElementById("live-region");
      if (region) document.getElementById("live-region").innerHTML = region.innerHTML;
    }).catch(function () {});
  }, seconds * 1000);
})();
