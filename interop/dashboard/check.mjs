// Drives the control plane's dashboard in headless Chromium (Debian's
// `chromium`, driven by npm `playwright-core`; both installed by .ci/run):
// the demo's agents and trust chart show, an audit proof verifies in the
// browser, a held call is approved. Screenshots go to the given folder.
// Usage: AGENTMESH_PEERS_NODE=<dir with node_modules> node check.mjs <control-plane-url> <admin-token> <screenshot-dir> <chromium>
import { createRequire } from "node:module";

// playwright-core lives in the peers folder, not next to this script.
const require = createRequire(`${process.env.AGENTMESH_PEERS_NODE}/package.json`);
const { chromium } = require("playwright-core");

const [, , url, token, shots, executablePath] = process.argv;
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
const result = { errors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1500 } });
  page.on("pageerror", (e) => result.errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") result.errors.push(m.text()); });
  await page.goto(`${url}/#token=${encodeURIComponent(token)}`);
  await page.waitForSelector('#agents tbody tr[data-agent="data-analyst-agent"]', { timeout: 20000 });
  result.agents = await page.$$eval("#agents tbody tr", (rows) => rows.map((r) => r.dataset.agent));
  result.trust_cell = (await page.textContent('#agents tbody tr[data-agent="data-analyst-agent"] td.trust')).trim();
  await page.waitForSelector("#trust-chart polyline.trust-line", { timeout: 20000 });
  result.trust_points = await page.$$eval("#trust-chart circle", (c) => c.length);
  result.graph_nodes = await page.$$eval("#graph text.graph-node", (t) => t.map((x) => x.textContent));
  await page.waitForSelector("#decisions tbody tr", { timeout: 20000 });
  result.decisions = await page.$$eval("#decisions tbody tr", (r) => r.length);
  await page.waitForSelector("#compliance tbody tr", { timeout: 20000 });
  await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });

  // Verify the proof of the newest audit entry, in the browser.
  await page.click("#audit tbody tr button.verify");
  await page.waitForSelector("#audit .proof-ok, #audit .proof-bad", { timeout: 20000 });
  result.proof = (await page.textContent("#audit .proof-ok, #audit .proof-bad")).trim();

  // Approve the call the demo left waiting.
  await page.waitForSelector("#approvals tbody tr[data-approval] button.approve", { timeout: 20000 });
  await page.click("#approvals tbody tr[data-approval] button.approve");
  await page.waitForSelector("#approvals .decided", { timeout: 20000 });
  result.decided = (await page.textContent("#approvals .decided")).trim();
  await page.screenshot({ path: `${shots}/dashboard-approved.png`, fullPage: true });
} catch (e) {
  result.failure = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
