// The vakt console's one helper: the timeline shows the hour under the pointer.
(function () {
  var t = document.getElementById('timeline');
  var out = document.getElementById('hover');
  if (t && out) {
    t.addEventListener('mouseover', function (e) {
      var v = e.target.getAttribute && e.target.getAttribute('data-v');
      if (v) out.textContent = v;
    });
  }
})();
