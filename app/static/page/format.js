// Numbers, words and small pieces of DOM shared by the page's parts.

const nf = new Intl.NumberFormat("en");
export const count = (n) => nf.format(n);
/** A probability in percent to one decimal; one below 1 that rounds to 100 is ">99.9%". */
export function percent(p) {
  const text = (p * 100).toFixed(1);
  return p < 1 && text === "100.0" ? ">99.9%" : `${text}%`;
}
/** The top class's probability beside its words (``sureWords``), never rounded up to a
 * band's bound it is below: 0.98975 was "99.0%: fairly sure" under a hint that 99% or
 * more is "very sure". */
export function percentFor(p, bands) {
  const text = percent(p);
  const crosses = [bands.very_sure, bands.fairly_sure].some(
    (bound) => p < bound && Number.parseFloat(text) >= bound * 100,
  );
  return crosses ? `${(Math.floor(p * 1000) / 10).toFixed(1)}%` : text;
}
/** A band's bound in percent, as precise as it is: 0.953 is "95.3%" (it was "95%"). */
export const share = (p) => `${(p * 100).toFixed(1).replace(/\.0$/, "")}%`;

/** Whether ``text`` is blank by the server's rule (``config.notBlankPattern``, from
 * app.serving.texts): JavaScript's trim() also removes U+FEFF and keeps U+001C–U+001F and
 * U+0085, which Python's strip() does the other way round. */
export const blankBy = (config) => {
  const notBlank = new RegExp(config.notBlankPattern);
  return (text) => !notBlank.test(text);
};

/** How many characters the server counts in ``text`` (Python's len: code points), where
 * JavaScript's length counts UTF-16 units (an emoji is two). */
export function characters(text) {
  let pairs = 0;
  for (let i = 0; i < text.length - 1; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        pairs += 1;
        i += 1;
      }
    }
  }
  return text.length - pairs;
}

/** How sure, in words: the same rule as app.serving.confidence.ConfidenceBands.words. */
export function sureWords(probabilities, bands) {
  const ranked = [...probabilities].sort((a, b) => b - a);
  const [top, second = 0] = ranked;
  if (top - second < bands.close_margin) return "not sure: the classes are close";
  if (top >= bands.very_sure) return "very sure";
  if (top >= bands.fairly_sure) return "fairly sure";
  return "not sure";
}

/** One sentence on what the words rest on, for the hint under the answer. */
export function sureEvidence(bands) {
  return (
    `"Very sure" means ${share(bands.very_sure)} or more for the top class, "fairly sure" ` +
    `${share(bands.fairly_sure)} or more, and "the classes are close" that the top two are ` +
    `within ${Math.round(bands.close_margin * 100)} points. ${bands.evidence}`
  );
}

// Placeholders of the shared preprocessing, as a person would read them.
const PLACEHOLDERS = {
  xxurl: "[link]",
  xxuser: "[@user]",
  xxnum: "[number]",
  xxsmile: "[:)]",
  xxfrown: "[:(]",
  "xxrating+2": "[top rating]",
  "xxrating+1": "[good rating]",
  "xxrating-1": "[poor rating]",
  "xxrating-2": "[bottom rating]",
};
export const tokenText = (token) => PLACEHOLDERS[token] || token;

/** An element with a class name and text. */
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** One list item per class: name, a bar as wide as its probability, the percentage. */
export function scoreItems(scores) {
  return Object.entries(scores).map(([name, p]) => {
    const item = element("li", `score score-${name}`);
    item.dataset.class = name;
    const bar = element("span", "bar");
    bar.setAttribute("aria-hidden", "true");
    const fill = element("span", "fill");
    fill.style.width = `${p * 100}%`;
    bar.append(fill);
    item.append(element("span", "name", name), bar, element("span", "value", percent(p)));
    return item;
  });
}

/** "Version 2 (canary)". */
export function versionName(version, versions) {
  const found = versions.find((item) => item.version === version);
  const labels = found && found.labels.length ? ` (${found.labels.join(", ")})` : "";
  return `version ${version}${labels}`;
}
