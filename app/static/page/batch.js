// Many reviews: pasted lines or a file, sent to POST /classify in batches of the server's
// MAX_BATCH_SIZE and under its MAX_CONTENT_LENGTH (GET /model → limits), with progress
// and cancel; then a sortable, filterable table, a summary with a small chart, and a CSV
// download.
import { getJSON, hideError, PlainError, postJSON, showError, withVersion } from "./api.js";
import { bytesOf, decodeFile, readLines, readReviews, toCSV } from "./csv.js";
import { blankBy, characters, count, element, percent, share, versionName } from "./format.js";

const $ = (id) => document.getElementById(id);
const MAX_SHOWN = 1000; // rows in the table at once (every row is in the data and the CSV)
// A batch's body is {"reviews":[…]}: these bytes, then each review as a JSON string in
// UTF-8 and a comma between two. MARGIN bytes of the server's limit are left free.
const FRAMING = JSON.stringify({ reviews: [] }).length;
const MARGIN = 256;
const encoder = new TextEncoder();

export function setUpBatch(config, chosenVersion) {
  const form = $("batch-form");
  const pasted = $("batch-text");
  const file = $("batch-file");
  const drop = $("drop-zone");
  const scoreButton = $("batch-score");
  const cancelButton = $("batch-cancel");
  const error = $("batch-error");
  const progressBox = $("batch-progress-box");
  const progress = $("batch-progress");
  const progressText = $("batch-progress-text");
  const output = $("batch-output");
  const tbody = document.querySelector("#batch-results tbody");
  const filter = $("batch-filter");
  const labelFilter = $("batch-label-filter");
  const blank = blankBy(config);
  let limits = null;
  let run = null; // {rows, columns, classes, name, controller, done, cancelled, version}
  // The reviews of the next run being read: it has begun, though `run` is not set yet.
  let reading = false;
  const busy = () => reading || Boolean(run && !run.done);
  let sort = { key: "index", descending: false };

  async function serverLimits() {
    if (!limits) limits = (await getJSON(config.urls.model)).limits;
    return limits;
  }

  // The rows in batches the server takes: at most max_batch_size reviews and a body of at
  // most max_content_length bytes (past it the server answers 413 to the whole batch). A
  // review too big for a request of its own is a bad row.
  function batches(rows, { max_batch_size: size, max_content_length: limit }) {
    const budget = limit - MARGIN;
    const chunks = [];
    let chunk = [];
    let bytes = FRAMING;
    for (const row of rows) {
      const own = encoder.encode(JSON.stringify(row.text)).length;
      if (FRAMING + own > budget) {
        row.error =
          `Too big to send: ${count(own)} bytes as JSON; the server takes ` +
          `${count(limit)} bytes a request (MAX_CONTENT_LENGTH).`;
        fill(row);
        continue;
      }
      const more = own + (chunk.length ? 1 : 0);
      if (chunk.length && (chunk.length >= size || bytes + more > budget)) {
        chunks.push(chunk);
        chunk = [];
        bytes = FRAMING;
      }
      bytes += own + (chunk.length ? 1 : 0);
      chunk.push(row);
    }
    if (chunk.length) chunks.push(chunk);
    return chunks;
  }

  function check(rows) {
    if (!rows.length) throw new PlainError("Paste some reviews (one per line) or choose a file first.");
    if (rows.length > config.maxFileRows) {
      throw new PlainError(
        `That is ${count(rows.length)} reviews; the page takes up to ${count(config.maxFileRows)} at a time. ` +
          "Split the file, or score it with python -m app.batch.",
      );
    }
    for (const row of rows) {
      if (row.error) continue;
      if (blank(row.text)) row.error = "Empty: nothing to score.";
      else if (characters(row.text) > config.maxTextChars) {
        row.error = `Too long: ${count(characters(row.text))} characters (the limit is ${count(config.maxTextChars)}).`;
      }
    }
  }

  // The row's <tr>, made when it is first shown.
  function tableRow(row) {
    if (row.tr) return row.tr;
    const tr = element("tr");
    tr.append(
      element("td", "col-index", String(row.index + 1)),
      element("td", "col-text"),
      element("td", "col-label", "…"),
      element("td", "col-score", ""),
    );
    tr.cells[1].dir = "auto"; // a review in Arabic or Hebrew reads from the right
    tr.cells[1].append(element("div", "clamp", row.text));
    row.tr = tr;
    fill(row);
    return tr;
  }

  function fill(row) {
    if (!row.tr) return;
    const [, , labelCell, scoreCell] = row.tr.cells;
    if (row.label) {
      labelCell.replaceChildren(element("span", `label label-${row.label}`, row.label));
      scoreCell.textContent = percent(row.score);
      row.tr.dataset.label = row.label;
    } else if (row.error) {
      labelCell.replaceChildren("—", element("span", "row-error", ` ${row.error}`));
      row.tr.classList.add("has-error");
    }
  }

  function setBusy(busy) {
    // Cancel hides when the batch ends: focus on it would fall to the page's body (a
    // keyboard or screen-reader user lost their place), so it goes to Score reviews.
    if (!busy && document.activeElement === cancelButton) scoreButton.focus();
    scoreButton.setAttribute("aria-disabled", String(busy));
    cancelButton.hidden = !busy;
    progressBox.toggleAttribute("data-waiting", !busy && !run);
  }

  // Busy from the first moment, while the reviews are read: a file chosen and Score
  // reviews clicked at once started two runs of it (every review sent twice).
  async function start(source) {
    if (busy()) return;
    hideError(error);
    reading = true;
    scoreButton.setAttribute("aria-disabled", "true");
    const before = [progress.value, progressText.textContent];
    let parsed;
    try {
      parsed = await source();
      check(parsed.rows);
    } catch (problem) {
      [progress.value, progressText.textContent] = before;
      setBusy(false);
      showError(error, problem);
      return;
    } finally {
      reading = false;
    }
    const version = chosenVersion();
    run = {
      ...parsed,
      version,
      answeredBy: new Set(),
      classes: config.versions[0].classes,
      controller: new AbortController(),
      done: false,
      cancelled: false,
    };
    run.rows.forEach((row, index) => {
      row.index = index;
    });
    sort = { key: "index", descending: false };
    labelFilter.replaceChildren(element("option", "", "All"), ...run.classes.map((name) => {
      const option = element("option", "", name);
      option.value = name;
      return option;
    }));
    labelFilter.options[0].value = "";
    filter.value = "";
    output.removeAttribute("data-waiting");
    render();
    await score(run);
  }

  async function score(current) {
    let total = current.rows.filter((row) => !row.error).length;
    const shown = (done) => {
      progress.max = Math.max(total, 1);
      progress.value = done;
      progressText.textContent = `${count(done)} of ${count(total)} reviews`;
    };
    shown(0);
    setBusy(true);
    summarise();
    try {
      const chunks = batches(
        current.rows.filter((row) => !row.error),
        await serverLimits(),
      );
      total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
      let done = 0;
      shown(done);
      for (const [n, chunk] of chunks.entries()) {
        await scoreChunk(current, chunk);
        done += chunk.length;
        shown(done);
        if (n % 8 === 0) summarise();
      }
    } catch (problem) {
      // Cancelled while the request was sent or its answer read: either way, no error.
      if (current.controller.signal.aborted) current.cancelled = true;
      else showError(error, problem);
    } finally {
      current.done = true;
      for (const row of current.rows) {
        if (!row.label && !row.error) {
          row.error = current.cancelled ? "Not scored: cancelled." : "Not scored.";
          fill(row);
        }
      }
      setBusy(false);
      summarise();
      render();
    }
  }

  // A batch the server refuses as a whole (400: a text it will not take; 413: too big) is
  // sent again one review at a time: a bad row gets the server's reason, the others
  // their answers.
  async function scoreChunk(current, chunk) {
    let body;
    try {
      body = await postJSON(
        withVersion(config.urls.classify, current.version),
        { reviews: chunk.map((row) => row.text) },
        { signal: current.controller.signal },
      );
    } catch (problem) {
      if (problem.status !== 400 && problem.status !== 413) throw problem;
      if (chunk.length > 1) {
        for (const row of chunk) await scoreChunk(current, [row]);
        return;
      }
      chunk[0].error = `Refused: ${problem.message}${problem.detail ? ` ${problem.detail}` : ""}`;
      fill(chunk[0]);
      return;
    }
    current.answeredBy.add(body.model.version);
    body.predictions.forEach((prediction, i) => {
      Object.assign(chunk[i], prediction, { version: body.model.version });
      fill(chunk[i]);
    });
  }

  function summarise() {
    if (!run) return;
    const scored = run.rows.filter((row) => row.label);
    const counts = Object.fromEntries(run.classes.map((name) => [name, 0]));
    for (const row of scored) counts[row.label] += 1;
    const failed = run.rows.length - scored.length;
    const versions = [...run.answeredBy].map((v) => versionName(v, config.versions)).join(" and ");
    let text = `${count(scored.length)} of ${count(run.rows.length)} reviews scored`;
    if (versions) text += ` by ${versions}`;
    if (run.done && run.cancelled) text += "; cancelled before the end";
    if (run.done && failed) text += `; ${count(failed)} not scored (see the table)`;
    $("batch-status").textContent = `${text}${run.done ? "." : "…"}`;
    $("batch-summary").replaceChildren(
      ...run.classes.map((name) => {
        const part = scored.length ? counts[name] / scored.length : 0;
        const item = element("li", `score score-${name}`);
        item.dataset.class = name;
        item.dataset.count = counts[name];
        const bar = element("span", "bar");
        bar.setAttribute("aria-hidden", "true");
        const fillBar = element("span", "fill");
        fillBar.style.width = `${part * 100}%`;
        bar.append(fillBar);
        item.append(
          element("span", "name", name),
          bar,
          element("span", "value", `${count(counts[name])} (${share(part)})`),
        );
        return item;
      }),
    );
  }

  const compare = {
    index: (a, b) => a.index - b.index,
    text: (a, b) => a.text.localeCompare(b.text),
    label: (a, b) => (a.label || "~").localeCompare(b.label || "~") || a.index - b.index,
    score: (a, b) => (a.score ?? -1) - (b.score ?? -1) || a.index - b.index,
  };

  function markSort() {
    for (const th of document.querySelectorAll("#batch-results th")) {
      const key = th.querySelector("button").dataset.sort;
      if (key === sort.key) th.setAttribute("aria-sort", sort.descending ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    }
  }

  // The table shows the rows that pass the filter, in the chosen order, up to
  // MAX_SHOWN: beyond that a table helps no one and slows every frame; the download has
  // every row.
  function render() {
    if (!run) return;
    const needle = filter.value.trim().toLowerCase();
    const label = labelFilter.value;
    const rows = run.rows.filter(
      (row) => (!needle || row.text.toLowerCase().includes(needle)) && (!label || row.label === label),
    );
    rows.sort(compare[sort.key]);
    if (sort.descending) rows.reverse();
    const shown = rows.slice(0, MAX_SHOWN);
    tbody.replaceChildren(...shown.map(tableRow));
    markSort();
    const total = run.rows.length;
    let text = rows.length === total ? `Showing all ${count(total)} rows.` : `${count(rows.length)} of ${count(total)} rows match.`;
    if (shown.length < rows.length) {
      text = `${count(rows.length)} rows${rows.length === total ? "" : ` of ${count(total)} match`}; the table shows the first ${count(MAX_SHOWN)} in this order (sort or filter to see others; the download has every row).`;
    }
    $("batch-shown").textContent = text;
  }

  function download() {
    if (!run) {
      showError(error, new PlainError("Score some reviews first; then the results can be downloaded."));
      return;
    }
    // As python -m app.batch writes it: the input's columns (one named like an added column
    // is replaced), then the prediction, the version that gave it and the error; numbers to
    // 6 decimals; the input's separator and line ending; bytes that were not UTF-8 as read.
    const added = ["label", "score", ...run.classes.map((name) => `p_${name}`), "version", "error"];
    const width = run.columns.length;
    const kept = run.columns.flatMap((name, i) => (added.includes(name) ? [] : [i]));
    const fixed = (p) => (p === undefined ? "" : p.toFixed(6));
    const rows = run.rows.map((row) => {
      // A row's own cells under its columns: short rows padded, cells past the header's
      // (a bad row) left out.
      const cells = [...row.fields, ...Array(width).fill("")].slice(0, width);
      return [
        ...kept.map((i) => cells[i]),
        row.label ?? "",
        fixed(row.score),
        ...run.classes.map((name) => fixed(row.scores && row.scores[name])),
        row.version ?? "",
        row.error ?? "",
      ];
    });
    const text = toCSV([...kept.map((i) => run.columns[i]), ...added], rows, run);
    const blob = bytesOf(text, "text/csv");
    const link = element("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${(run.name || "reviews").replace(/\.[^.]+$/, "")}-scored.csv`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  }

  async function fromFile(chosen) {
    if (chosen.size > config.maxFileBytes) {
      throw new PlainError(
        `That file is ${count(chosen.size)} bytes; the page reads files up to ` +
          `${count(config.maxFileBytes)} bytes (${Math.round(config.maxFileBytes / 1048576)} MB). ` +
          "Split it, or score it with python -m app.batch.",
      );
    }
    // A 5 MB file takes a moment to read and parse: the progress line says so meanwhile.
    progressBox.removeAttribute("data-waiting");
    progress.value = 0;
    progressText.textContent = "Reading the file…";
    const parsed = readReviews(chosen.name, decodeFile(await chosen.arrayBuffer()), blank);
    if (!parsed.rows.length) throw new PlainError("That file has no reviews: every line of it is blank.");
    return { ...parsed, name: chosen.name };
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!pasted.value.trim() && file.files.length) start(() => fromFile(file.files[0]));
    else start(async () => ({ ...readLines(pasted.value, blank), name: "reviews" }));
  });
  // A file chosen while a batch is read or scored is not read (it went unnoticed): the
  // field is cleared, so that it does not name a file whose results are not shown.
  file.addEventListener("change", () => {
    if (!file.files.length) return;
    const [chosen] = file.files;
    if (busy()) {
      file.value = "";
      showError(
        error,
        new PlainError(
          `${chosen.name} was not read: a batch is being scored. Cancel it (or let it end), ` +
            "then choose the file again.",
        ),
      );
      return;
    }
    start(() => fromFile(chosen));
  });
  cancelButton.addEventListener("click", () => run && run.controller.abort());
  // Escape anywhere in the section: in the form, the filter box, the table.
  $("batch").addEventListener("keydown", (event) => {
    if (event.key === "Escape" && run && !run.done) run.controller.abort();
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    // One file is scored at a time: the first of several dropped, and the alert says so
    // (the others were left out without a word).
    const [first, ...others] = event.dataTransfer.files;
    if (!first) return;
    const started = !busy();
    const one = new DataTransfer();
    one.items.add(first);
    file.files = one.files;
    file.dispatchEvent(new Event("change"));
    if (started && others.length) {
      const names = others.map((other) => other.name).join(", ");
      showError(error, new PlainError(`One file is scored at a time: ${first.name} was read, not ${names}.`));
    }
  });
  for (const button of document.querySelectorAll("#batch-results th button")) {
    button.addEventListener("click", () => {
      const key = button.dataset.sort;
      sort = { key, descending: sort.key === key ? !sort.descending : key === "score" };
      render();
    });
  }
  filter.addEventListener("input", render);
  labelFilter.addEventListener("change", render);
  $("batch-download").addEventListener("click", download);
}
