// Reading the files the page accepts (CSV, TSV, JSON Lines, plain text) into review rows,
// and writing CSV. RFC 4180 CSV: quoted fields may hold commas, quotes ("") and line breaks.

import { PlainError } from "./api.js";

/** The rows of a CSV text, each an array of fields separated by ``delimiter``. */
export function parseCSV(text, delimiter = ",") {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  let i = 0;
  if (text.charCodeAt(0) === 0xfeff) i = 1; // a byte-order mark
  for (; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          quoted = false;
        }
      } else {
        field += char;
      }
    } else if (char === '"' && field === "") {
      quoted = true;
    } else if (char === delimiter) {
      row.push(field);
      field = "";
    } else if (char === "\n" || char === "\r") {
      if (char === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else {
      field += char;
    }
  }
  if (field !== "" || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((fields) => !(fields.length === 1 && fields[0] === ""));
}

function csvField(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function toCSV(header, rows) {
  return [header, ...rows].map((row) => row.map(csvField).join(",")).join("\r\n") + "\r\n";
}

const TEXT_COLUMNS = ["text", "review"];

/** Review rows from a file's text: ``{columns, rows: [{text, fields, error}]}``, where
 * ``fields`` are the input's own columns (kept for the download). */
export function readReviews(name, content, blank = (text) => !text.trim()) {
  const extension = (name.match(/\.[^.]+$/) || [""])[0].toLowerCase();
  if (extension === ".csv") return readCSV(content);
  if (extension === ".tsv") return readCSV(content, ["\t"]);
  if (extension === ".jsonl" || extension === ".ndjson") return readJSONLines(content);
  if (extension === ".txt" || extension === "") return readLines(content, blank);
  throw new PlainError(
    `That file type (${extension}) is not one the page reads: use a .csv, .tsv, .jsonl, .ndjson or .txt file.`,
  );
}

/** One review a line; blank lines (by ``blank``: the server's rule) are skipped. */
export function readLines(content, blank = (text) => !text.trim()) {
  const rows = content
    .split(/\r\n|\n|\r/)
    .filter((line) => !blank(line))
    .map((line) => ({ text: line, fields: [line] }));
  return { columns: ["text"], rows };
}

/** The index of the text column in ``header``, or undefined. */
function textColumn(header) {
  const names = header.map((name) => name.trim().toLowerCase());
  return TEXT_COLUMNS.map((name) => names.indexOf(name)).find((index) => index >= 0);
}

// A CSV file's cells are separated by commas, or by semicolons where the comma is the
// decimal mark (spreadsheet exports), or by tabs: the first whose header has the text
// column is the file's.
const SEPARATORS = [",", ";", "\t"];

function readCSV(content, separators = SEPARATORS) {
  const headerLine = content.split(/\r\n|\n|\r/, 1)[0];
  const separator =
    separators.find((each) => textColumn(parseCSV(headerLine, each)[0] || []) !== undefined) ??
    separators[0];
  const [header, ...records] = parseCSV(content, separator);
  if (!header) throw new PlainError("That file is empty.");
  const column = textColumn(header);
  if (column === undefined) {
    throw new PlainError(
      `That file has no \`text\` column (nor \`review\`). Its columns: ${header.join(", ")}. ` +
        "Rename the column that holds the reviews to text.",
    );
  }
  const rows = records.map((fields) => {
    let error = null;
    // More cells than the header names: app.batch's words; the download keeps the first
    // ones, under their own columns, as app.batch writes the row. Fewer: the missing
    // cells are empty, as app.batch pads them (an empty text is then "Empty").
    if (fields.length > header.length) {
      error = `The row has ${fields.length} fields but the header has ${header.length}.`;
    }
    return { text: fields[column] ?? "", fields, error };
  });
  return { columns: header, rows };
}

// Half of a surrogate pair without the other half: JSON.parse reads "\ud800" into one.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The first lone surrogate in a key or string of a parsed JSON value, as its escape
 * (``\ud800``), or null: such a string is not Unicode text, and the API refuses a body
 * that holds one (as app.serving.texts.lone_surrogate finds it). */
function loneSurrogate(value) {
  const stack = [value];
  while (stack.length) {
    const item = stack.pop();
    if (typeof item === "string") {
      const found = item.match(LONE_SURROGATE);
      if (found) return `\\u${found[0].charCodeAt(0).toString(16).padStart(4, "0")}`;
    } else if (item && typeof item === "object") {
      if (!Array.isArray(item)) stack.push(...Object.keys(item));
      stack.push(...Object.values(item));
    }
  }
  return null;
}

function readJSONLines(content) {
  const columns = [];
  const objects = [];
  const rows = [];
  content.split(/\r\n|\n|\r/).forEach((line, i) => {
    if (!line.trim()) return;
    let value;
    try {
      value = JSON.parse(line);
    } catch {
      rows.push({ text: "", object: {}, error: `Line ${i + 1} is not valid JSON.` });
      return;
    }
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      rows.push({ text: "", object: {}, error: `Line ${i + 1} is not a JSON object.` });
      return;
    }
    // Only an escape makes one: a file's text is decoded, its bad bytes replaced.
    const lone = line.includes("\\u") ? loneSurrogate(value) : null;
    if (lone) {
      const error = `Line ${i + 1} is not text: a string holds a lone surrogate (${lone}).`;
      rows.push({ text: "", object: {}, error });
      return;
    }
    for (const key of Object.keys(value)) if (!columns.includes(key)) columns.push(key);
    const key = TEXT_COLUMNS.find((name) => name in value);
    const text = key ? value[key] : undefined;
    let error = null;
    if (text === undefined) error = `Line ${i + 1} has no "text" field.`;
    else if (typeof text !== "string") error = `Line ${i + 1}: "text" is not a string.`;
    rows.push({ text: typeof text === "string" ? text : "", object: value, error });
    objects.push(value);
  });
  if (!rows.length) throw new PlainError("That file is empty.");
  if (!objects.some((value) => TEXT_COLUMNS.some((name) => name in value))) {
    throw new PlainError('That file has no "text" field in any line.');
  }
  const flat = (value) => (value !== null && typeof value === "object" ? JSON.stringify(value) : value);
  for (const row of rows) row.fields = columns.map((key) => flat(row.object[key]));
  return { columns, rows };
}
