// One review: the label, a bar per class, how sure in words, which version answered, why
// (POST /explain), the example reviews, and two versions side by side.
import { hideError, postJSON, postJSONWithId, PlainError, showError, withVersion } from "./api.js";
import {
  blankBy,
  characters,
  element,
  percent,
  percentFor,
  scoreItems,
  sureEvidence,
  sureWords,
  tokenText,
  versionName,
} from "./format.js";

const $ = (id) => document.getElementById(id);
// Pushes smaller than this many points are shown as none.
const MIN_POINTS = 0.05;
// An explanation scores the text once per word: a transformer's of a long review takes
// tens of seconds, so it is given longer than an answer (TIMEOUT_MS).
const EXPLAIN_TIMEOUT_MS = 120_000;

export function setUpSingle(config, chosenVersion) {
  const form = $("classify-form");
  const review = $("review");
  const button = $("classify");
  const status = $("status");
  const error = $("error");
  const result = $("result");
  const explainClass = $("explain-class");
  const cancelButton = $("classify-cancel");
  // The request on its way (the answer, then its explanation): a new one aborts it.
  let pending = null;
  let lastExplanation = null;
  let example = null; // the example whose text is in the box, if any
  let answered = null; // the text the answer on show is for

  const blank = blankBy(config);
  const bandsOf = (version) =>
    (config.versions.find((item) => item.version === version) || config.versions[0]).bands;

  function problemWith(text) {
    if (blank(text)) return new PlainError("Type a review first.");
    const length = characters(text);
    if (length > config.maxTextChars) {
      return new PlainError(
        `That review is ${length.toLocaleString("en")} characters long; the limit is ` +
          `${config.maxTextChars.toLocaleString("en")}. Shorten it or split it.`,
      );
    }
    return null;
  }

  function failed(problem) {
    showError(error, problem);
    review.setAttribute("aria-invalid", "true");
    showResult(false);
  }

  // Without an answer the result keeps only its live region, empty, so that a screen
  // reader knows it before the answer is put in (one that appears with its content is
  // not announced).
  function showResult(shown) {
    result.toggleAttribute("data-waiting", !shown);
    if (!shown) {
      answered = null;
      $("feedback-choices").replaceChildren();
      // The live regions stay in view while waiting: none may keep the last answer's words.
      $("summary").replaceChildren();
      $("explain-status").textContent = "";
      $("feedback-status").textContent = "";
    }
  }

  // The true label, sent back for the answer on show (POST /feedback): buttons for the
  // answering version's classes, under the answer.
  function offerFeedback(body, requestId) {
    const box = $("feedback");
    const feedbackStatus = $("feedback-status");
    feedbackStatus.textContent = "";
    if (!config.urls.feedback || !requestId) {
      box.hidden = true;
      return;
    }
    // The answering version's classes. A version the page's config does not list (one
    // deployed after the page loaded) names its classes in its answer's scores.
    const known = config.versions.find((item) => item.version === body.model.version);
    const classes = known ? known.classes : Object.keys(body.scores);
    const buttons = classes.map((name) => {
      const choice = element("button", "secondary", name);
      choice.type = "button";
      choice.dataset.testid = `feedback-${name}`;
      choice.addEventListener("click", async () => {
        // The buttons are disabled while it is sent: focus on one would fall to the page's
        // body, so it goes to the status that says what became of the label.
        if (buttons.includes(document.activeElement)) feedbackStatus.focus();
        for (const other of buttons) other.disabled = true;
        feedbackStatus.textContent = "Sending…";
        try {
          const answer = await postJSON(config.urls.feedback, { request_id: requestId, label: name });
          const [given] = answer.feedback;
          feedbackStatus.textContent = given.correct
            ? `Recorded: ${name}. The model was right.`
            : `Recorded: ${name}. The model said ${given.predicted}: it counts as wrong for version ${given.version}.`;
        } catch (problem) {
          feedbackStatus.textContent = problem.message;
          for (const other of buttons) other.disabled = false;
        }
      });
      return choice;
    });
    $("feedback-choices").replaceChildren(...buttons);
    box.hidden = false;
  }

  function showAnswer(body, text) {
    answered = text;
    hideError(error);
    review.removeAttribute("aria-invalid");
    const version = body.model.version;
    const bands = bandsOf(version);
    const probabilities = Object.values(body.scores);
    const label = element("strong", `label label-${body.label}`, body.label);
    label.id = "label";
    label.dataset.testid = "result-label";
    const words = element("span", "sure", sureWords(probabilities, bands));
    words.id = "sure";
    $("summary").replaceChildren("Predicted ", label, ` (${percentFor(body.score, bands)}): `, words, ".");
    $("sure-evidence").textContent = sureEvidence(bands);
    $("scores").replaceChildren(...scoreItems(body.scores));
    $("answered-by").textContent = `Answered by ${body.model.name} ${versionName(version, config.versions)}.`;
    const note = $("example-note");
    if (example && example.text === review.value) {
      const agrees = example.expected === body.label;
      // A hard case the answering version gets right: its note says why it is hard for
      // others (the notes speak of version 1), not why this one failed.
      const why = example.kind === "limits" && agrees ? `A hard case for some versions. ${example.note}` : example.note;
      note.textContent =
        `A person would say ${example.expected}; the model ${agrees ? "agrees" : "says " + body.label}. ` + why;
      note.className = `example-note ${agrees ? "agrees" : "disagrees"}`;
      note.hidden = false;
    } else {
      note.hidden = true;
    }
    showResult(true);
    // On a phone the answer is under the examples: bring it into view.
    if (result.getBoundingClientRect().top > window.innerHeight) {
      result.scrollIntoView({ block: "start" });
    }
  }

  async function explain(text, version, signal) {
    const explainStatus = $("explain-status");
    const body = $("explain-body");
    explainStatus.textContent = "Working out which words mattered…";
    body.hidden = true;
    try {
      lastExplanation = await postJSON(
        withVersion(config.urls.explain, version),
        { review: text },
        { signal, timeout: EXPLAIN_TIMEOUT_MS },
      );
    } catch (problem) {
      if (problem.name === "AbortError") throw problem;
      explainStatus.textContent = `No explanation: ${problem.message}`;
      return;
    }
    const classes = Object.keys(lastExplanation.scores);
    explainClass.replaceChildren(
      ...classes.map((name) => {
        const option = element("option", "", name);
        option.value = name;
        return option;
      }),
    );
    explainClass.value = lastExplanation.label;
    renderExplanation();
    explainStatus.textContent = lastExplanation.tokens.length
      ? ""
      : "The model found no words it knows in this text.";
    body.hidden = !lastExplanation.tokens.length;
  }

  function renderExplanation() {
    const chosen = explainClass.value;
    const tokens = lastExplanation.tokens;
    const pushes = tokens.map((item) => item.contributions[chosen]);
    // Colour strength relative to the biggest push, but two points at least, so that a
    // text where nothing matters much does not look as if everything did.
    const scale = Math.max(0.02, ...pushes.map(Math.abs));
    const spans = tokens.map((item, i) => {
      const push = pushes[i];
      const points = push * 100;
      const direction = Math.abs(points) < MIN_POINTS ? "none" : points > 0 ? "for" : "against";
      const span = element("span", `token token-${direction}`, tokenText(item.token));
      span.style.setProperty("--w", Math.min(1, Math.abs(push) / scale).toFixed(3));
      span.dataset.push = push;
      span.title = `${points >= 0 ? "+" : ""}${points.toFixed(1)} points toward ${chosen}`;
      return span;
    });
    // The words the model did not read, where they are: past its input's end, or the
    // middle of a long review a transformer skips (it reads the opening and the end).
    const unseen = lastExplanation.unseen_tokens;
    const at = lastExplanation.unseen_at ?? spans.length;
    if (unseen) {
      const where = at < spans.length ? "in the middle of a long review" : "past the model's input length";
      spans.splice(at, 0, element("span", "unseen", `(+${unseen} words ${where}, not read)`));
    }
    const line = $("explain-tokens");
    line.replaceChildren();
    spans.forEach((span, i) => line.append(...(i ? [" ", span] : [span])));
    for (const name of document.querySelectorAll(".explain-class-name")) name.textContent = chosen;
    const ranked = tokens.map((item, i) => [item.token, pushes[i]]);
    const list = (items) =>
      items.slice(0, 5).map(([token, push]) => {
        const item = element("li");
        item.append(
          element("span", "driver-token", tokenText(token)),
          " ",
          element("span", "driver-points", `${push > 0 ? "+" : ""}${(push * 100).toFixed(1)} pts`),
        );
        return item;
      });
    const toward = ranked.filter(([, push]) => push * 100 >= MIN_POINTS).sort((a, b) => b[1] - a[1]);
    const away = ranked.filter(([, push]) => push * 100 <= -MIN_POINTS).sort((a, b) => a[1] - b[1]);
    $("explain-saturated").hidden = !(tokens.length > 1 && scale <= 0.02);
    $("drivers-for").replaceChildren(...(toward.length ? list(toward) : [element("li", "none", "no word")]));
    $("drivers-against").replaceChildren(...(away.length ? list(away) : [element("li", "none", "no word")]));
  }

  // A new request aborts the one on its way (its answer or explanation is for a text no
  // longer asked about) and starts at once; Cancel (or Escape) aborts it and says so.
  // Cancel hides when nothing is on its way: focus on it would fall to the page's body
  // (a keyboard or screen-reader user lost their place), so it goes to Classify.
  function hideCancel() {
    if (document.activeElement === cancelButton) button.focus();
    cancelButton.hidden = true;
  }

  async function classify() {
    if (pending) pending.abort();
    pending = null;
    hideCancel();
    status.textContent = "";
    const text = review.value;
    const version = chosenVersion();
    const problem = problemWith(text);
    if (problem) return failed(problem);
    const mine = new AbortController();
    pending = mine;
    hideError(error);
    review.removeAttribute("aria-invalid");
    showResult(false); // the last answer was for another text
    status.textContent = "Classifying…";
    cancelButton.hidden = false;
    try {
      const { answer: body, requestId } = await postJSONWithId(
        withVersion(config.urls.classify, version),
        { review: text },
        { signal: mine.signal },
      );
      // Edited (or another version picked) meanwhile: that text is the one to answer.
      if (review.value !== text || chosenVersion() !== version) return classify();
      showAnswer(body, text);
      offerFeedback(body, requestId);
      status.textContent = "";
      await explain(text, body.model.version, mine.signal); // the version that answered
    } catch (problem) {
      if (problem.name !== "AbortError") failed(problem);
      else if (mine.cancelled) {
        if (result.hasAttribute("data-waiting")) status.textContent = "Cancelled.";
        else $("explain-status").textContent = "No explanation: cancelled.";
      }
    } finally {
      if (pending === mine) {
        pending = null;
        hideCancel();
        if (!mine.cancelled) status.textContent = "";
      }
    }
  }

  function cancel() {
    if (!pending) return;
    pending.cancelled = true;
    pending.abort();
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
  cancelButton.addEventListener("click", cancel);
  // An edit takes the answer away, with its explanation on its way and its true-label
  // buttons: they stayed under the new text, and a click recorded a label for the old one.
  review.addEventListener("input", () => {
    if (answered === null || review.value === answered) return;
    if (pending) {
      pending.abort();
      pending = null;
      hideCancel();
    }
    status.textContent = "";
    showResult(false);
  });
  // Escape anywhere but in the batch section (its own Escape cancels a batch): focus is
  // on an example or the answer's buttons as often as in the form.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.target.closest?.("#batch")) cancel();
  });
  explainClass.addEventListener("change", renderExplanation);
  for (const button of document.querySelectorAll("button.example")) {
    button.addEventListener("click", () => {
      example = config.examples.find((item) => item.text === button.dataset.text);
      review.value = example.text;
      review.dispatchEvent(new Event("input")); // a comparison of the old text is cleared
      classify();
    });
  }
  if ($("compare")) setUpCompare(config, review, problemWith, bandsOf);
}

function setUpCompare(config, review, problemWith, bandsOf) {
  const button = $("compare-button");
  const error = $("compare-error");
  const results = $("compare-results");
  const summary = $("compare-summary");

  function column(body) {
    const version = body.model.version;
    const article = element("article", "compare-column");
    article.dataset.version = version;
    const heading = element("h3", "", versionName(version, config.versions));
    heading.textContent = heading.textContent[0].toUpperCase() + heading.textContent.slice(1);
    const label = element("p", "compare-label");
    label.append(
      element("strong", `label label-${body.label}`, body.label),
      ` ${percentFor(body.score, bandsOf(version))}, `,
      element("span", "sure", sureWords(Object.values(body.scores), bandsOf(version))),
    );
    const scores = element("ul", "scores compact");
    scores.setAttribute("aria-label", `Probability of each class, ${heading.textContent}`);
    scores.append(...scoreItems(body.scores));
    article.append(heading, label, scores);
    return article;
  }

  // The comparison on its way: a new one, or an edit of the text, aborts it, so that
  // columns are only ever shown under the text they are for (a late answer for an
  // earlier text overwrote a newer one, and an edited text kept the old columns).
  let comparing = null;

  function clear() {
    if (comparing) comparing.abort();
    comparing = null;
    button.removeAttribute("aria-disabled");
    hideError(error);
    results.replaceChildren();
    summary.textContent = "";
  }

  async function compare() {
    clear();
    const text = review.value;
    const problem = problemWith(text);
    if (problem) {
      showError(error, problem);
      return;
    }
    const versions = [$("compare-a").value, $("compare-b").value];
    const mine = new AbortController();
    comparing = mine;
    button.setAttribute("aria-disabled", "true");
    summary.textContent = "Comparing…";
    try {
      const answers = await Promise.all(
        versions.map((version) =>
          postJSON(withVersion(config.urls.classify, version), { review: text }, { signal: mine.signal }),
        ),
      );
      if (comparing !== mine) return;
      hideError(error);
      results.replaceChildren(...answers.map(column));
      const [a, b] = answers;
      summary.textContent =
        a.label === b.label
          ? `Both say ${a.label} (${percent(a.score)} and ${percent(b.score)}).`
          : `They disagree: version ${a.model.version} says ${a.label}, version ${b.model.version} says ${b.label}.`;
    } catch (problem) {
      if (comparing !== mine || problem.name === "AbortError") return;
      showError(error, problem);
      summary.textContent = "";
    } finally {
      if (comparing === mine) {
        comparing = null;
        button.removeAttribute("aria-disabled");
      }
    }
  }

  button.addEventListener("click", compare);
  review.addEventListener("input", clear);
  for (const select of [$("compare-a"), $("compare-b")]) select.addEventListener("change", clear);
}
