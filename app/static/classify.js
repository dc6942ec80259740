// The try-the-model page: POST /classify with fetch(), then show the label and one bar per
// class, or the API's error message. No framework; the page works without a build step.
"use strict";

(() => {
  const form = document.getElementById("classify-form");
  const review = document.getElementById("review");
  const button = document.getElementById("classify");
  const status = document.getElementById("status");
  const error = document.getElementById("error");
  const result = document.getElementById("result");
  const summary = document.getElementById("summary");
  const scores = document.getElementById("scores");
  const model = document.getElementById("model");
  let busy = false;

  const percent = (p) => `${(p * 100).toFixed(1)}%`;

  // The API's details map a field to its messages, or (for lists) an index to them.
  function detailMessages(details) {
    return Object.values(details || {}).flatMap((value) => {
      if (Array.isArray(value)) return value.map(String);
      if (value && typeof value === "object") return detailMessages(value);
      return [String(value)];
    });
  }

  function showError(message, details) {
    error.replaceChildren();
    const heading = document.createElement("p");
    heading.textContent = message;
    error.append(heading);
    const messages = detailMessages(details);
    if (messages.length) {
      const list = document.createElement("ul");
      for (const text of messages) {
        const item = document.createElement("li");
        item.textContent = text;
        list.append(item);
      }
      error.append(list);
    }
    error.hidden = false;
    review.setAttribute("aria-invalid", "true");
    result.hidden = true;
  }

  function showResult(body) {
    error.hidden = true;
    error.replaceChildren();
    review.removeAttribute("aria-invalid");
    summary.replaceChildren("Predicted ");
    const label = document.createElement("strong");
    label.className = `label label-${body.label}`;
    label.id = "label";
    label.textContent = body.label;
    summary.append(label, ` with ${percent(body.score)} probability.`);
    scores.replaceChildren(
      ...Object.entries(body.scores).map(([name, p]) => {
        const item = document.createElement("li");
        item.className = `score score-${name}`;
        item.dataset.class = name;
        const bar = document.createElement("span");
        bar.className = "bar";
        bar.setAttribute("aria-hidden", "true");
        const fill = document.createElement("span");
        fill.className = "fill";
        fill.style.width = `${p * 100}%`;
        bar.append(fill);
        const value = document.createElement("span");
        value.className = "value";
        value.textContent = percent(p);
        const title = document.createElement("span");
        title.className = "name";
        title.textContent = name;
        item.append(title, bar, value);
        return item;
      }),
    );
    if (body.model) {
      model.replaceChildren("Model ");
      for (const [id, text, after] of [
        ["model-name", body.model.name, " version "],
        ["model-version", body.model.version, ""],
      ]) {
        const strong = document.createElement("strong");
        strong.id = id;
        strong.textContent = text;
        model.append(strong, after);
      }
    }
    result.hidden = false;
  }

  async function classify() {
    if (busy) return;
    busy = true;
    button.setAttribute("aria-disabled", "true");
    status.textContent = "Classifying…";
    try {
      const response = await fetch(form.action, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ review: review.value }),
      });
      const body = await response.json().catch(() => null);
      if (response.ok && body) {
        showResult(body);
      } else if (body && body.error) {
        showError(body.error.message, body.error.details);
      } else {
        showError(`The server answered ${response.status} ${response.statusText}.`.trim());
      }
    } catch {
      showError("The server could not be reached. Check the connection and try again.");
    } finally {
      busy = false;
      button.removeAttribute("aria-disabled");
      status.textContent = "";
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    classify();
  });
  review.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      classify();
    }
  });
})();
