/* Field Console: progressive enhancement of the camera form (hand-written, no library).
   Picking a resolution preset fills width and height; typing another size switches the
   preset back to "custom". Without JavaScript the server applies the preset itself. */
(function () {
  "use strict";
  function enhance(select) {
    var presets;
    try {
      presets = JSON.parse(select.getAttribute("data-resolution-presets"));
    } catch (e) {
      return;
    }
    var form = select.form;
    var width = form && form.elements.width;
    var height = form && form.elements.height;
    if (!width || !height) return;
    select.addEventListener("change", function () {
      var size = presets[select.value];
      if (size) {
        width.value = size[0];
        height.value = size[1];
      }
    });
    function typed() {
      var size = presets[select.value];
      if (size && (Number(width.value) !== size[0] || Number(height.value) !== size[1])) {
        select.value = "custom";
      }
    }
    width.addEventListener("input", typed);
    height.addEventListener("input", typed);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var selects = document.querySelectorAll("select[data-resolution-presets]");
    for (var i = 0; i < selects.length; i++) enhance(selects[i]);
  });
})();
