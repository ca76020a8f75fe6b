#!/usr/bin/env node
// Checks serve-qwen-lora's chat page in a real headless browser (Debian's chromium) and saves a
// screenshot: loads the page, asks each question as a user would (type, press Ask), waits for the
// answer, and checks that it shows a source label and, for a KB answer, the cited entry.
// Optional tooling, not part of CI: needs `npm install puppeteer-core` and chromium.
//
// usage: node scripts/check-page.cjs --url http://127.0.0.1:8000 --out docs/img/serve-page.png \
//          [--question Q]... [--chromium /usr/bin/chromium] [--key API_KEY]
"use strict";

const puppeteer = require("puppeteer-core");

function parse(argv) {
  const a = { url: "http://127.0.0.1:8000", out: "serve-page.png", chromium: "/usr/bin/chromium", questions: [], key: "" };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag}: needs a value`);
    if (flag === "--url") a.url = value;
    else if (flag === "--out") a.out = value;
    else if (flag === "--chromium") a.chromium = value;
    else if (flag === "--question") a.questions.push(value);
    else if (flag === "--key") a.key = value;
    else throw new Error(`unknown flag ${flag}`);
  }
  if (a.questions.length === 0) a.questions = ["VPN 怎麼連線?", "公司有提供員工宿舍嗎?"];
  return a;
}

(async () => {
  const a = parse(process.argv.slice(2));
  const browser = await puppeteer.launch({ executablePath: a.chromium, headless: true, args: ["--no-sandbox"] });
  let failed = false;
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 900, height: 760 });
    await page.goto(a.url, { waitUntil: "networkidle0" });
    if (a.key) await page.type("#key", a.key);
    // The page shows the newest turn first; ask in reverse so the first question ends on top.
    for (const q of [...a.questions].reverse()) {
      const before = await page.$$eval(".turn .meta, .turn .error", (e) => e.length);
      await page.$eval("#q", (e) => (e.value = ""));
      await page.type("#q", q);
      await page.click("#send");
      await page.waitForFunction((n) => document.querySelectorAll(".turn .meta, .turn .error").length > n,
        { timeout: 180000 }, before);
      const turn = await page.$eval(".turn", (t) => ({
        question: t.querySelector(".question").textContent,
        answer: t.querySelector(".answer").textContent,
        label: t.querySelector(".label") ? t.querySelector(".label").textContent : null,
        entry: t.querySelector(".meta") ? t.querySelector(".meta").dataset.doc !== "" : false,
        cite: t.querySelector(".cite") ? t.querySelector(".cite").textContent : null,
        error: t.querySelector(".error") ? t.querySelector(".error").textContent : null,
      }));
      console.log(JSON.stringify(turn));
      // An answer taken from a KB entry names it and shows its text; a refusal cites nothing.
      if (turn.error || !turn.label || turn.question !== q || turn.entry !== Boolean(turn.cite)) {
        console.error(`FAIL: ${q}: ${turn.error || "no label, or a KB entry named without its text (or the reverse)"}`);
        failed = true;
      }
    }
    await page.screenshot({ path: a.out, fullPage: true });
    console.log(`screenshot: ${a.out}`);
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
