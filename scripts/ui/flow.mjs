// The web pages in a real browser: Debian's headless Chromium driven by playwright-core.
//
// Starts the release binary on a loopback port with a fresh SQLite file, loads a simulated
// experiment (3 arms) and a day of production latency, and proposes two recommendations. Then:
// - a reviewer signs in, opens the inbox and a recommendation, finds the dose-response chart
//   drawn (an SVG image with one point per arm), approves with a comment, and sees the history
//   and the published SLO;
// - the experiments list, the experiment and its analysis page (a forest plot with a row per
//   arm × metric, a dose-response chart per KPI, the sample-ratio table, the raw JSON link);
// - a viewer signs in, sees no approve button, and a decision POSTed with the viewer's own
//   cookie and CSRF token is refused (403);
// - axe-core runs on every page (light and dark): no serious or critical violation;
// - a screenshot of each page goes to target/ui-screenshots/.
//
// Usage: node scripts/ui/flow.mjs target/release/sloproof   (exits non-zero on any failure)
import { spawn, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const binary = resolve(process.argv[2] ?? join(root, "target/release/sloproof"));
const shots = join(root, "target", "ui-screenshots");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const axeSource = readFileSync(join(here, "node_modules/axe-core/axe.min.js"), "utf8");
const ADMIN = "ui-flow-admin-token-0123456789";

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function freePort() {
  return new Promise((ok) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function api(base, method, path, token, body, type = "application/json") {
  const r = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": type },
    body: body === undefined ? undefined : type === "application/json" ? JSON.stringify(body) : body,
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path} -> ${r.status}: ${text.slice(0, 400)}`);
  return text ? JSON.parse(text) : null;
}

// axe-core on the current page (injected: the contexts bypass the pages' CSP, which allows no
// script): fails on any serious or critical violation.
async function accessible(page, name) {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(async () => await window.axe.run(document));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of bad) {
    console.error(`${name}: ${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join("; ")})`);
  }
  check(bad.length === 0, `${name}: ${bad.length} serious or critical accessibility violations`);
  return result.violations.length;
}

async function shoot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function signIn(context, base, token) {
  const page = await context.newPage();
  await page.goto(`${base}/ui/sign-in`);
  await page.fill("#token", token);
  await Promise.all([page.waitForURL(`${base}/ui/recommendations`), page.click("button[type=submit]")]);
  return page;
}

async function main() {
  mkdirSync(shots, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), "sloproof-ui-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(binary, ["serve"], {
    env: {
      ...process.env,
      SLOPROOF_DATABASE_URL: join(dir, "ui.db"),
      SLOPROOF_BIND: `127.0.0.1:${port}`,
      SLOPROOF_ADMIN_TOKEN: ADMIN,
      SLOPROOF_LOG: "warn",
      SLOPROOF_WRITE_RATE: "0",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  let browser;
  try {
    for (let i = 0; i < 100; i++) {
      try {
        if ((await fetch(`${base}/readyz`)).ok) break;
      } catch {}
      await new Promise((ok) => setTimeout(ok, 100));
    }
    execFileSync(binary, ["simulate", "--api", base, "--token", ADMIN, "--units", "40000",
      "--effect-per-100ms", "-0.2", "--seed", "21"], { stdio: "ignore" });
    const analysis = await api(base, "POST", "/experiments/checkout-latency-sim/analyses", ADMIN,
      { bootstrap: { resamples: 200, seed: 1 } });
    const start = new Date(Math.floor(Date.now() / 60000) * 60000 - 86400000).toISOString().replace(".000Z", "Z");
    const bounds = Array.from({ length: 200 }, (_, i) => (i + 1) * 10).join(",");
    const series = execFileSync(binary, ["simulate-series", "--start", start, "--windows", "1440", "--bounds", bounds],
      { maxBuffer: 256 << 20 });
    await api(base, "POST", "/metrics/checkout-latency/series", ADMIN, series, "application/x-ndjson");
    const ask = { max_relative_kpi_loss: 0.1, value_per_kpi_unit: 50, currency: "EUR", units_per_day: 100000, window_days: 7 };
    const first = await api(base, "POST", `/analyses/${analysis.id}/recommendations`, ADMIN, ask);
    const second = await api(base, "POST", `/analyses/${analysis.id}/recommendations`, ADMIN,
      { ...ask, max_relative_kpi_loss: 0.05 });
    const reviewer = (await api(base, "POST", "/tokens", ADMIN, { name: "pm-alice", role: "reviewer" })).token;
    const viewer = (await api(base, "POST", "/tokens", ADMIN, { name: "viewer-bob", role: "viewer" })).token;

    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox"] });
    const summary = [];

    // The reviewer: inbox, recommendation, approval, history, published SLO.
    const rc = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
    const page = await signIn(rc, base, reviewer);
    const waiting = await page.locator("section[aria-labelledby=proposed] tbody tr").count();
    check(waiting === 2, `two proposals wait, found ${waiting}`);
    summary.push(["inbox", await accessible(page, "inbox")]);
    await shoot(page, "inbox");
    await Promise.all([page.waitForURL(`${base}/ui/recommendations/${first.id}`),
      page.click(`a[href="/ui/recommendations/${first.id}"]`)]);
    const points = await page.locator("figure.chart-card svg[role=img] circle").count();
    check(points === 3, `the dose-response chart has ${points} arm points, expected 3`);
    check(await page.locator("svg[role=img] title").count() === 1, "the chart has a title");
    check(await page.getByText("Replayed on production").count() === 1, "the replay section is shown");
    check(await page.getByText(/Value at risk: [0-9,]+ EUR per 7 days/).count() === 1, "the value at risk names its currency");
    summary.push(["recommendation", await accessible(page, "recommendation")]);
    await shoot(page, "recommendation");
    await page.fill("#comment", "Checked the replay: ship it");
    await Promise.all([page.waitForURL(`${base}/ui/recommendations/${first.id}`),
      page.click("button[value=approve]")]);
    check(await page.getByText("Checked the replay: ship it").count() === 1, "the comment is in the history");
    check(await page.locator("button[value=approve]").count() === 0, "no approve button once decided");
    const published = await api(base, "GET", `/recommendations/${first.id}`, ADMIN);
    check(published.status === "approved" && published.slo_id, "the recommendation is approved and published");
    await page.goto(`${base}/ui/slos`);
    check(await page.locator(`#slo-${published.slo_id}`).count() === 1, "the SLO is listed");
    check(await page.locator(`#slo-${published.slo_id} meter`).count() === 1, "its budget is shown as a meter");
    summary.push(["slos", await accessible(page, "slos")]);
    await shoot(page, "slos");
    await page.goto(`${base}/ui/slos/${published.slo_id}`);
    const charts = await page.locator("figure.chart-card svg[role=img]").count();
    check(charts === 2, `the SLO page draws the burn-down and the burn rate, found ${charts} charts`);
    summary.push(["slo", await accessible(page, "slo")]);
    await shoot(page, "slo");

    // The data scientist's pages: experiments, an experiment, its analysis.
    await page.goto(`${base}/ui/experiments`);
    summary.push(["experiments", await accessible(page, "experiments")]);
    await Promise.all([page.waitForURL(`${base}/ui/experiments/checkout-latency-sim`),
      page.click(`a[href="/ui/experiments/checkout-latency-sim"]`)]);
    summary.push(["experiment", await accessible(page, "experiment")]);
    await shoot(page, "experiment");
    await Promise.all([page.waitForURL(`${base}/ui/analyses/${analysis.id}`),
      page.click(`a[href="/ui/analyses/${analysis.id}"]`)]);
    const effects = analysis.kpi_effects.length;
    const squares = await page.locator("svg[aria-labelledby=forest-title] rect[width='10'][height='10']").count();
    check(effects > 0 && squares === effects, `the forest plot has ${squares} rows, expected ${effects}`);
    const doses = await page.locator("section[aria-labelledby=causal] figure.chart-card svg[role=img]").count();
    check(doses === analysis.causal_effects.length, `${doses} dose-response charts, expected ${analysis.causal_effects.length}`);
    check(await page.locator(`a[href="/api/v1/analyses/${analysis.id}"]`).count() === 1, "the raw JSON is linked");
    check(await page.locator("section[aria-labelledby=srm] tbody tr").count() === 3, "the sample-ratio table has a row per arm");
    summary.push(["analysis", await accessible(page, "analysis")]);
    await shoot(page, "analysis");

    // The same pages in dark mode.
    const dark = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "dark", bypassCSP: true });
    const dpage = await signIn(dark, base, reviewer);
    summary.push(["inbox (dark)", await accessible(dpage, "inbox (dark)")]);
    await dpage.goto(`${base}/ui/recommendations/${second.id}`);
    summary.push(["recommendation (dark)", await accessible(dpage, "recommendation (dark)")]);
    await shoot(dpage, "recommendation-dark");
    await dpage.goto(`${base}/ui/analyses/${analysis.id}`);
    summary.push(["analysis (dark)", await accessible(dpage, "analysis (dark)")]);

    // The viewer: no decision form, and a forged decision is refused.
    const vc = await browser.newContext({ bypassCSP: true });
    const vpage = await signIn(vc, base, viewer);
    await vpage.goto(`${base}/ui/recommendations/${second.id}`);
    check(await vpage.locator("button[value=approve]").count() === 0, "a viewer sees no approve button");
    const csrf = await vpage.locator("form.signout input[name=csrf]").getAttribute("value");
    const forged = await vc.request.post(`${base}/ui/recommendations/${second.id}/decision`,
      { form: { decision: "approve", csrf }, maxRedirects: 0 });
    check(forged.status() === 403, `a viewer's forged decision got ${forged.status()}, expected 403`);
    const still = await api(base, "GET", `/recommendations/${second.id}`, ADMIN);
    check(still.status === "proposed", "the forged decision changed nothing");
    const signInPage = await vc.newPage();
    await signInPage.goto(`${base}/ui/sign-in`);
    summary.push(["sign-in", await accessible(signInPage, "sign-in")]);
    await shoot(signInPage, "sign-in");

    for (const [name, minor] of summary) console.log(`${name}: 0 serious or critical (${minor} minor or moderate)`);
    console.log(`ui flow passed; screenshots in ${shots}`);
  } finally {
    if (browser) await browser.close();
    server.kill();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
