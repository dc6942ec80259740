// Reading the files the page accepts (CSV, TSV, JSON Lines, plain text) into review rows,
// and writing CSV. RFC 4180 CSV: quoted fields may hold commas, quotes ("") and line breaks.

import { PlainError } from "./api.js";

/** The rows of a CSV text, each an array of fields separated by ``delimiter``. As Python's
 * ``csv`` (and so python -m app.batch) reads it: a blank line is no row, but a line of one
 * quoted empty field (``""``) is; a file that ends inside a quoted field is refused, not
 * read as one cell holding every line after the quote. */
export function parseCSV(text, delimiter = ",") {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  let quotes = false; // the row has a quoted field
  let line = 1; // where the current row starts (1-based, blank lines counted)
  let lines = 1;
  let i = 0;
  if (text.charCodeAt(0) === 0xfeff) i = 1; // a byte-order mark
  const endRow = () => {
    row.push(field);
    if (quotes || row.length > 1 || row[0] !== "") rows.push(row);
    row = [];
    field = "";
    quotes = false;
  };
  for (; i < text.length; i++) {
    const char = text[i];
    if (char === "\n" || (char === "\r" && text[i + 1] !== "\n")) lines++;
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
      quotes = true;
    } else if (char === delimiter) {
      row.push(field);
      field = "";
    } else if (char === "\n" || char === "\r") {
      if (char === "\r" && text[i + 1] === "\n") {
        i++;
        lines++;
      }
      endRow();
      line = lines;
    } else {
      field += char;
    }
  }
  if (quoted) {
    throw new PlainError(
      `The quoted field opened on line ${line} is not closed by the end of the file ` +
        "(is the file cut short?).",
    );
  }
  if (field !== "" || row.length || quotes) endRow();
  return rows;
}

// Bytes that are not UTF-8 are read as U+DC80-U+DCFF, one a byte, as python -m app.batch
// reads them (Python's "surrogateescape"): the row that holds one is a bad row, and the
// download writes the bytes back unchanged (bytesOf).
const ESCAPED_BYTE = /[\udc80-\udcff]/u; // u: the low half of a pair is not one

/** The length of the UTF-8 sequence at ``bytes[i]``, or 0 if none starts there. */
function sequenceLength(bytes, i) {
  const lead = bytes[i];
  if (lead < 0x80) return 1;
  let length = 0;
  let low = 0x80;
  let high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) length = 2;
  else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead === 0xe0) low = 0xa0; // no overlong forms
    if (lead === 0xed) high = 0x9f; // no surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead === 0xf0) low = 0x90;
    if (lead === 0xf4) high = 0x8f; // nothing past U+10FFFF
  } else return 0;
  for (let k = 1; k < length; k++) {
    const next = bytes[i + k];
    if (next === undefined || next < (k === 1 ? low : 0x80) || next > (k === 1 ? high : 0xbf)) return 0;
  }
  return length;
}

/** A file's bytes as text: UTF-8, each byte that is not UTF-8 as U+DC80 + byte; a file
 * with a UTF-16 byte-order mark (Excel's "Unicode Text") by that mark. */
export function decodeFile(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder("utf-16le").decode(bytes);
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder("utf-16be").decode(bytes);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  try {
    return utf8.decode(bytes);
  } catch {
    // Some bytes are not UTF-8: the slow way.
  }
  const parts = [];
  let start = 0;
  for (let i = 0; i < bytes.length; ) {
    const length = sequenceLength(bytes, i);
    if (length) {
      i += length;
      continue;
    }
    parts.push(utf8.decode(bytes.subarray(start, i)), String.fromCharCode(0xdc00 + bytes[i]));
    i += 1;
    start = i;
  }
  parts.push(utf8.decode(bytes.subarray(start)));
  return parts.join("");
}

/** Why cells hold bytes that are not UTF-8 (the first, and its column), as python -m
 * app.batch words it; or null. */
export function notUTF8(values, names) {
  for (const [index, value] of values.entries()) {
    const found = String(value ?? "").match(ESCAPED_BYTE);
    if (found) {
      const byte = (found[0].charCodeAt(0) - 0xdc00).toString(16).toUpperCase().padStart(2, "0");
      const where = names && index < names.length ? ` in column '${names[index]}'` : "";
      return `Not valid UTF-8 (byte 0x${byte}${where}).`;
    }
  }
  return null;
}

/** ``text`` as a Blob of UTF-8, each U+DC80-U+DCFF written back as the byte it was read from. */
export function bytesOf(text, type) {
  const encoder = new TextEncoder();
  const parts = text
    .split(/([\udc80-\udcff])/u)
    .map((part, i) => (i % 2 ? Uint8Array.of(part.charCodeAt(0) - 0xdc00) : encoder.encode(part)));
  return new Blob(parts, { type });
}

function csvField(value, delimiter) {
  const text = value === null || value === undefined ? "" : String(value);
  return text.includes(delimiter) || /["\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** CSV text: cells separated by ``delimiter``, each line ended by ``newline``. */
export function toCSV(header, rows, { delimiter = ",", newline = "\n" } = {}) {
  return [header, ...rows].map((row) => row.map((cell) => csvField(cell, delimiter)).join(delimiter) + newline).join("");
}

const TEXT_COLUMNS = ["text", "review"];

/** Review rows from a file's text: ``{columns, rows: [{text, fields, error}]}``, where
 * ``fields`` are the input's own columns (kept for the download). */
export function readReviews(name, content, blank = (text) => !text.trim()) {
  const extension = (name.match(/\.[^.]+$/) || [""])[0].toLowerCase();
  if (extension === ".csv") return readCSV(content);
  if (extension === ".tsv") return readCSV(content, ["\t"]);
  if (extension === ".jsonl" || extension === ".ndjson") return readJSONLines(content);
  if (extension === ".txt" || extension === "") {
    const parsed = readLines(content, blank);
    for (const row of parsed.rows) row.error = notUTF8([row.text]);
    return parsed;
  }
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

// A header's names that repeat, case ignored (empty ones aside), as python -m app.batch finds them.
function repeatedNames(header) {
  const seen = header.filter(Boolean).map((name) => name.toLowerCase());
  return header.filter((name) => name && seen.filter((other) => other === name.toLowerCase()).length > 1);
}

function readCSV(content, separators = SEPARATORS) {
  // The header: the first line that is not blank; its line ending is the download's.
  const [, headerLine, ending] = content.match(/^[\r\n]*([^\r\n]*)(\r\n|\r|\n)?/);
  const headerOf = (separator) => {
    try {
      return parseCSV(headerLine, separator)[0] || [];
    } catch {
      return []; // a quoted name over several lines
    }
  };
  const separator = separators.find((each) => textColumn(headerOf(each)) !== undefined) ?? separators[0];
  const [header, ...records] = parseCSV(content, separator);
  if (!header) throw new PlainError("That file is empty.");
  const repeated = repeatedNames(header);
  if (repeated.length) {
    throw new PlainError(
      `The header repeats column names (${repeated.join(", ")}; case is ignored): ` +
        "give each column a name of its own.",
    );
  }
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
    } else {
      error = notUTF8(fields, header);
    }
    return { text: fields[column] ?? "", fields, error };
  });
  if (!rows.length) throw new PlainError("That file has a header but no rows: nothing to score.");
  return { columns: header, rows, delimiter: separator, newline: ending || "\n" };
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
    const undecodable = notUTF8([line]);
    if (undecodable) {
      rows.push({ text: "", object: {}, error: `Line ${i + 1}: ${undecodable}` });
      return;
    }
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
