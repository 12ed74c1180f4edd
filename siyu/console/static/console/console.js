/* siyu console: the little behaviour plain HTML lacks. Event delegation, so it keeps
   working on content htmx swaps in. */
(function () {
  "use strict";

  function boxes(form, name) {
    // form.elements: also the boxes outside the form tied to it by a form="…" attribute
    return Array.prototype.slice.call(form.elements).filter(function (el) { return el.type === "checkbox" && el.name === name; });
  }

  function showCount(form, name) {
    var out = form.querySelector('[data-selected-count="' + name + '"]');
    if (!out) return;
    var n = boxes(form, name).filter(function (b) { return b.checked; }).length;
    out.textContent = n ? String(n) + " ✓" : "";
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    // the button that submitted may ask its own question (a second action of one form)
    var button = event.submitter;
    var question = (button && button.getAttribute("data-confirm")) || (form instanceof HTMLFormElement && form.getAttribute("data-confirm"));
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (!(el instanceof HTMLElement)) return;
    var all = el.getAttribute("data-select-all");
    if (all && el.form) {
      boxes(el.form, all).forEach(function (b) { b.checked = el.checked; });
      showCount(el.form, all);
      return;
    }
    if (el.name === "contact" && el.form) {
      showCount(el.form, "contact");
    }
    if (el.hasAttribute("data-autosubmit") && el.form) {
      el.form.requestSubmit ? el.form.requestSubmit() : el.form.submit();
    }
  });
})();
