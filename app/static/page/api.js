// The page as a client of the API: JSON requests, and every failure as a sentence a person
// can act on (the API's own message stays available as the detail).

/** An error to show: a plain message, and the server's words when it gave any. */
export class PlainError extends Error {
  constructor(message, detail = "") {
    super(message);
    this.detail = detail;
  }
}

const nf = new Intl.NumberFormat("en");

// The API key field, when the server asks for one (API_KEYS); its value lives in this tab only.
const keyField = document.getElementById("api-key");
const KEY_STORE = "sentiment-api-key";
if (keyField) {
  keyField.value = sessionStorage.getItem(KEY_STORE) || "";
  keyField.addEventListener("input", () => sessionStorage.setItem(KEY_STORE, keyField.value.trim()));
}

/** Headers for a call: JSON, and the API key when the page has one. A key with a
 * character no header can carry (a zero-width space or curly quotes, pasted with it) is a
 * PlainError about the key: fetch threw a TypeError, shown as "could not be reached". */
function headers(extra = {}) {
  const key = keyField ? keyField.value.trim() : "";
  if (/[^\x21-\x7e]/.test(key)) {
    throw new PlainError(
      "That API key has a character a key cannot have (a space, quote or invisible " +
        "character pasted with it?). Type or paste it again above.",
    );
  }
  return { Accept: "application/json", ...extra, ...(key ? { Authorization: `Bearer ${key}` } : {}) };
}

function detailMessages(details) {
  return Object.values(details || {}).flatMap((value) => {
    if (Array.isArray(value)) return value.map(String);
    if (value && typeof value === "object") return detailMessages(value);
    return [String(value)];
  });
}

// The API's error codes that a person can act on, in plain words.
const BY_CODE = {
  api_key_invalid: "The server does not accept that API key. Check it and enter it again above.",
  api_key_out_of_scope: "That key may only read the server's metrics. Enter an API key above.",
  model_not_found: "That model version is not served any more. Reload the page to see the versions on offer.",
  prediction_not_found:
    "The server has no record of that answer (it may not be recording now). Try again in a moment.",
  prediction_pending: "The server is still recording that answer. Try again in a moment.",
  feedback_conflict: "That answer already has a different true label.",
  database_unavailable: "The server is not recording answers now, so it cannot take a true label.",
};

/** What went wrong, in plain words, from the status, the API's error body, the answer's
 * request id and its Retry-After header. */
export function plainError(status, body, requestId, retryAfter = null) {
  const error = (body && body.error) || {};
  const messages = detailMessages(error.details);
  const said = [error.message, ...messages].filter(Boolean).join(" ");
  const detail = said ? `The server said: ${said} (${error.code || "error"}, HTTP ${status})` : `HTTP ${status}`;
  const text = messages.join(" ");
  if (status === 400 && /must not be empty/.test(text)) {
    return new PlainError("Type a review first.", detail);
  }
  const long = text.match(/at most (\d+) characters \(got (\d+)\)/);
  if (status === 400 && long) {
    return new PlainError(
      `That review is ${nf.format(long[2])} characters long; the limit is ${nf.format(long[1])}. ` +
        "Shorten it or split it.",
      detail,
    );
  }
  if (Object.hasOwn(BY_CODE, error.code)) {
    return new PlainError(BY_CODE[error.code], detail);
  }
  if (status === 401) {
    return new PlainError("This server needs an API key. Enter it in the API key field above.", detail);
  }
  if (status === 413) {
    return new PlainError("That is more text than the server takes in one request.", detail);
  }
  if (status === 400 || status === 415) {
    return new PlainError("The server could not use that text.", detail);
  }
  // Busy or starting (503: Retry-After says when to come back), or too many requests
  // (429, from a proxy in front): these were "had a problem… tell whoever runs it".
  if (status === 503 || status === 429) {
    const seconds = Number.parseInt(retryAfter, 10);
    const when = seconds >= 0 && String(seconds) === String(retryAfter).trim()
      ? `in ${seconds} second${seconds === 1 ? "" : "s"}`
      : "in a moment";
    const now = status === 429
      ? "The server is getting too many requests now."
      : "The server cannot answer now (busy, or still starting).";
    return new PlainError(`${now} Try again ${when}.`, detail);
  }
  if (status >= 500) {
    // The request id to quote, only when there is one (a proxy's error page has none).
    const quote = requestId
      ? `tell whoever runs it and quote the request id ${requestId}.`
      : "tell whoever runs it.";
    return new PlainError(
      `The server had a problem answering. Try again; if it keeps failing, ${quote}`,
      detail,
    );
  }
  return new PlainError(`The server did not answer as expected (HTTP ${status}).`, detail);
}

// How long the page waits for an answer before it says so: Heroku's router gives up at 30 s
// (H12), so an answer later than that would not come through there either.
export const TIMEOUT_MS = 30_000;

/** ``fetch`` with the page's headers, given up after ``timeout`` ms or when ``signal``
 * aborts (then the AbortError is thrown as is: the caller asked for it). The response and
 * its JSON body (null when it has none), or a PlainError. */
async function request(url, init, { signal, timeout = TIMEOUT_MS } = {}) {
  const sent = headers(init.headers);
  const limit = AbortSignal.timeout(timeout);
  const both = signal ? AbortSignal.any([signal, limit]) : limit;
  try {
    const response = await fetch(url, { ...init, headers: sent, signal: both });
    // Reading the body can be cut short too; a body that is not JSON is null.
    const answer = await response.json().catch((error) => {
      if (both.aborted) throw error;
      return null;
    });
    return { response, answer };
  } catch (error) {
    if (limit.aborted && !(signal && signal.aborted)) {
      throw new PlainError(
        `The server did not answer within ${Math.round(timeout / 1000)} seconds. ` +
          "It may be overloaded or stuck: try again in a moment.",
      );
    }
    if (error.name === "AbortError") throw error;
    throw new PlainError(
      "The server could not be reached. Check that it is running and your connection, then try again.",
    );
  }
}

/** POST ``body`` as JSON; the parsed answer, or a PlainError. ``options``: ``signal`` (to
 * abort it) and ``timeout`` (ms, TIMEOUT_MS by default). */
export async function postJSON(url, body, options) {
  return (await postJSONWithId(url, body, options)).answer;
}

/** As postJSON, with the request id the server gave the answer (X-Request-ID). */
export async function postJSONWithId(url, body, options) {
  const init = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const { response, answer } = await request(url, init, options);
  const requestId = response.headers.get("X-Request-ID");
  if (response.ok && answer) return { answer, requestId };
  const problem = plainError(response.status, answer, requestId, response.headers.get("Retry-After"));
  problem.status = response.status;
  throw problem;
}

export async function getJSON(url, options) {
  const { response, answer } = await request(url, {}, options);
  if (response.ok && answer) return answer;
  const said = (name) => response.headers.get(name);
  throw plainError(response.status, answer, said("X-Request-ID"), said("Retry-After"));
}

/** ``url`` with ``?version=`` when a version is pinned. */
export function withVersion(url, version) {
  return version ? `${url}?version=${encodeURIComponent(version)}` : url;
}

/** Fill an alert element with a PlainError (or any error). */
export function showError(element, error) {
  element.replaceChildren();
  const message = document.createElement("p");
  message.textContent = error.message || String(error);
  element.append(message);
  if (error.detail) {
    const detail = document.createElement("p");
    detail.className = "error-detail";
    detail.textContent = error.detail;
    element.append(detail);
  }
  element.hidden = false;
}

export function hideError(element) {
  element.hidden = true;
  element.replaceChildren();
}
