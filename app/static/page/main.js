// The companion page: reads what the server rendered in, and sets up its parts. Plain ES
// modules, no framework, no build step, nothing from other hosts.
import { setUpBatch } from "./batch.js";
import { setUpSingle } from "./single.js";

const config = JSON.parse(document.getElementById("page-config").textContent);
const picker = document.getElementById("version");
// The pinned version, or "" for the routing policy's choice.
const chosenVersion = () => (picker ? picker.value : "");

setUpSingle(config, chosenVersion);
setUpBatch(config, chosenVersion);
// The buttons come disabled: clicked before this script ran, Classify posted the form
// itself and the browser showed the API's raw 415.
for (const button of document.querySelectorAll("[data-needs-script]")) button.disabled = false;
document.documentElement.dataset.ready = "true";
