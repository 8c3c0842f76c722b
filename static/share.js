/* Progressive enhancement of the share box: a "copy link" button. Without this script the link
   stays in a read-only field to copy by hand, and every share link works as a plain link. */
"use strict";
document.querySelectorAll("[data-copy]").forEach(function (button) {
  var field = document.getElementById(button.getAttribute("data-copy"));
  var status = button.closest(".share").querySelector("[data-copy-status]");
  if (!field) { return; }
  field.addEventListener("focus", function () { field.select(); });
  if (!navigator.clipboard) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(field.value).then(function () {
      if (status) { status.textContent = button.getAttribute("data-copied"); }
    }, function () {
      field.focus();  /* not allowed (e.g. in a frame): the link is selected for copying */
    });
  });
});
