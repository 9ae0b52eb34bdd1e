// A new user's path through the app, in a real browser against the real serve mode and engine:
// add a model, import a malformed and a good dataset, train (watching the chart move, reloading mid-run),
// cancel a queued run, chat with the trained adapter, compare it with the base model and rate blind.
// Screenshots of every page go to test-output/e2e/.

import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type Fixture, openBrowser, removeFixture, screenshot, type Server, startServer, writeFixture } from './harness.js';

let fixture: Fixture;
let server: Server;
let browser: Browser;
let page: Page;

/** Goes to a page through the navigation bar. */
function nav(label: string): Promise<void> {
  return page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: label, exact: true }).click();
}

/** The training step the Train page shows for the run being watched. */
async function shownStep(): Promise<number> {
  const text = (await page.locator('[role=progressbar][aria-label="training steps"]').getAttribute('aria-valuenow')) ?? '0';
  return Number(text);
}

async function chartPoints(title: string): Promise<number> {
  return Number((await page.locator(`figure[aria-label="${title}"] canvas`).first().getAttribute('data-points')) ?? '0');
}

beforeAll(async () => {
  buildApp();
  fixture = writeFixture();
  server = await startServer(join(fixture.dir, 'workspace'));
  ({ browser, page } = await openBrowser());
  page.on('dialog', (d) => void d.accept());
}, 300_000);

// What the page looked like when a step failed.
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && page) await screenshot(page, `failed-${ctx.task.name.slice(0, 40).replace(/\W+/g, '-')}`);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  if (fixture) removeFixture(fixture);
});

describe('serve mode access', () => {
  it('refuses the page and the API without the token', async () => {
    expect((await fetch(server.origin + '/')).status).toBe(401);
    expect((await fetch(`${server.origin}/api/call/system.info`, { method: 'POST', body: '{}' })).status).toBe(401);
    expect((await fetch(`${server.origin}/api/events`)).status).toBe(401);
  });
});

describe('a new user, from a model folder to a chat with a trained adapter', () => {
  it('adds a model and sees its config, size, memory and backend', async () => {
    await page.goto(server.url);
    await page.getByRole('heading', { name: 'Models', exact: true }).waitFor();
    await page.getByText('No models yet').waitFor();
    // A wrong folder first: the error says what is wrong, where the user typed it.
    await page.getByLabel('Model folder').fill(join(fixture.dir, 'no-such-model'));
    await page.getByRole('button', { name: 'Add model' }).click();
    await page.getByRole('alert').filter({ hasText: 'no-such-model' }).waitFor();
    await page.getByLabel('Model folder').fill(fixture.modelDir);
    await page.getByLabel('Name (optional)').fill('tiny-llama');
    await page.getByRole('button', { name: 'Add model' }).click();
    const details = page.getByRole('region', { name: 'Model details' });
    await details.getByRole('heading', { name: 'tiny-llama' }).waitFor();
    await expect(details.getByText('Layers')).toBeDefined();
    expect(await details.innerText()).toMatch(/Backend\s+native|Backend\s+wasm|Backend\s+cpu/);
    await screenshot(page, '01-models');
  });

  it('imports a malformed file: every bad record is listed with its line and field, nothing is imported', async () => {
    await nav('Datasets');
    await page.getByTestId('dataset-file').setInputFiles(fixture.badFile);
    const report = page.getByTestId('import-report');
    await report.waitFor();
    const text = await report.innerText();
    expect(text).toMatch(/4\s+records read/);
    expect(text).toMatch(/3 invalid/);
    // line 2: missing output; line 3: instruction is a number; line 4: truncated JSON
    const rows = await report.locator('tbody tr').allInnerTexts();
    expect(rows.some((r) => /^2\s/.test(r) && r.includes('output'))).toBe(true);
    expect(rows.some((r) => /^3\s/.test(r) && r.includes('instruction'))).toBe(true);
    expect(rows.some((r) => /^4\s/.test(r))).toBe(true);
    await screenshot(page, '02-datasets-malformed');
    await page.getByRole('button', { name: 'Import nothing' }).click();
    await page.getByText('No datasets yet').waitFor();
  });

  it('imports a good file, searches, edits and undoes', async () => {
    await page.getByTestId('dataset-file').setInputFiles(fixture.goodFile);
    await page.getByRole('button', { name: 'Import 6 examples' }).click();
    await page.getByRole('heading', { name: 'colors', level: 2 }).waitFor();
    await page.getByTestId('example-count').filter({ hasText: '6 shown' }).waitFor();
    await page.getByLabel('Search examples').fill('sky');
    await page.getByTestId('example-count').filter({ hasText: '1 shown' }).waitFor();
    await page.getByRole('row').filter({ hasText: 'What color is sky?' }).click();
    const editor = page.getByRole('region', { name: /Edit example/ });
    await editor.getByLabel('Output').fill('');
    await editor.getByText('The output cannot be empty').waitFor();
    await editor.getByLabel('Output').fill('azure');
    await editor.getByRole('button', { name: /Save/ }).click();
    await page.getByRole('row').filter({ hasText: 'azure' }).waitFor();
    await page.getByRole('button', { name: 'Undo last change' }).click();
    await page.getByRole('row').filter({ hasText: 'blue' }).waitFor();
    await page.getByLabel('Search examples').fill('');
    await page.getByTestId('example-count').filter({ hasText: '6 shown' }).waitFor();
    await screenshot(page, '03-datasets');
    await page.getByRole('tab', { name: 'Token lengths' }).click();
    await page.getByText('Over max_seq_len').waitFor();
    await page.locator('figure[aria-label="Token length (prompt + response)"] canvas').waitFor();
    await screenshot(page, '04-datasets-token-lengths');
  });

  it('trains: the chart moves, a reload mid-run finds it still going, a queued run is cancelled', async () => {
    await nav('Train');
    await page.getByRole('heading', { name: 'New run' }).waitFor();
    await page.getByTestId('trainable-params').waitFor();
    // A field-level error before anything starts.
    await page.getByLabel('Warm-up epochs').fill('99');
    await page.getByText(/at most epochs/).waitFor();
    // The tiny model learns the task in ~120 steps at a high learning rate; 2000 keep it busy long enough
    // (~1 minute here) to queue another run and reload the page in the middle.
    const fill = async (label: string, value: string) => page.getByLabel(label, { exact: true }).fill(value);
    await fill('Prompt length K', '10');
    await fill('Adapted layers L', '2');
    await fill('Epochs', '2000');
    await fill('Warm-up epochs', '1');
    await fill('Batch size', '3');
    await fill('Gradient accumulation', '2');
    await fill('Max sequence length', '256');
    await page.getByLabel('Peak learning rate (optional)').fill('0.3');
    await page.getByLabel('Run name').fill('colors');
    await page.getByText('Fix the fields marked in red first.').waitFor({ state: 'detached' });
    await page.getByRole('button', { name: /Start training/ }).click();

    const live = page.getByRole('region', { name: 'Run colors' });
    await live.getByText('running').first().waitFor();
    // (Functions, not strings: the page's Content-Security-Policy forbids evaluating strings.)
    const lossPointsAbove = (n: number) => Number(document.querySelector('figure[aria-label="Training loss"] canvas')?.getAttribute('data-points')) > n;
    await page.waitForFunction(lossPointsAbove, 2, { timeout: 120_000 });
    const before = await chartPoints('Training loss');
    await page.waitForFunction(lossPointsAbove, before, { timeout: 60_000 });
    await screenshot(page, '05-train-running');

    // Queue a second, long run: it waits behind the first. Long enough that it cannot finish before the
    // cancel below lands, however fast the machine (1000 epochs of this tiny set took ~8 s and once
    // completed while the click waited for the button to settle).
    await fill('Epochs', '100000');
    await page.getByLabel('Peak learning rate (optional)').fill('0.01');
    await page.getByLabel('Run name').fill('long run');
    await page.getByRole('button', { name: /Add to queue/ }).click();
    const queue = page.getByRole('region', { name: 'Queue' });
    await queue.getByText('#1 in line').waitFor();

    // Reload mid-run: the run is still there, its curve is back, and it is still moving.
    const stepBefore = await shownStep();
    expect(stepBefore).toBeLessThan(2000);
    await page.reload();
    await page.getByRole('region', { name: 'Run colors' }).waitFor();
    await page.waitForFunction(
      (s) => Number(document.querySelector('[role=progressbar][aria-label="training steps"]')?.getAttribute('aria-valuenow')) > s,
      stepBefore,
      { timeout: 60_000 },
    );
    // The curve is back whole: the steps from before the reload (from the workspace) and the new ones (live).
    await page.waitForFunction(lossPointsAbove, stepBefore, { timeout: 30_000 });
    await screenshot(page, '06-train-after-reload');

    // The first run completes; the queued one starts, and is cancelled while it trains.
    const long = page.getByRole('region', { name: 'Run long run' });
    await long.waitFor({ timeout: 180_000 });
    await long.getByText('running').first().waitFor();
    await long.getByRole('button', { name: 'Cancel' }).click();
    await long.locator('[data-status=cancelled]').waitFor();

    await nav('Runs');
    const row = page.getByRole('row').filter({ hasText: 'colors' });
    await row.getByText('completed').waitFor();
    await page.getByRole('row').filter({ hasText: 'long run' }).getByText('cancelled').waitFor();
    await row.getByRole('link', { name: 'colors' }).click();
    await page.getByRole('region', { name: 'Run details' }).waitFor();
    await screenshot(page, '07-runs');
  });

  it('chats with the trained adapter, which answers what it learned', async () => {
    await nav('Chat');
    await page.getByRole('button', { name: 'New chat' }).click();
    const chat = page.getByRole('region', { name: 'Conversation' });
    await chat.getByLabel('Adapter').locator('option:checked').filter({ hasText: 'colors' }).waitFor({ state: 'attached' });
    // Greedy decoding: the learned answer exactly.
    await chat.getByText('System prompt and sampling').click();
    await chat.getByLabel('Temperature').fill('0');
    await chat.getByLabel('Temperature').blur();
    await chat.getByLabel('Message').fill('What color is sky?');
    await chat.getByLabel('Message').press('Enter');
    await chat.locator('[data-role=assistant] .bubble').first().waitFor({ timeout: 60_000 });
    expect((await chat.locator('[data-role=assistant] .bubble').first().innerText()).trim()).toBe('blue');
    await chat.getByText('System prompt and sampling').click();
    await screenshot(page, '08-chat');
  });

  it('compares base and adapter side by side, streamed, then rates blind', async () => {
    await nav('Compare');
    await page.getByLabel('Prompts (one per line)').fill('What color is grass?\nWhat color is snow?');
    await page.getByRole('button', { name: /^Compare/ }).click();
    await page.locator('[data-cell="1:1"][data-done=true]').waitFor({ timeout: 60_000 });
    expect((await page.locator('[data-cell="0:1"]').innerText()).trim()).toBe('green');
    expect((await page.locator('[data-cell="1:1"]').innerText()).trim()).toBe('white');
    await screenshot(page, '09-compare');
    await page.getByRole('tab', { name: 'Rate blind' }).click();
    const blind = page.getByRole('region', { name: 'Blind rating' });
    await blind.getByText('Pair 1 of 2').waitFor();
    // Blind: the labelled columns are gone while rating.
    expect(await page.getByRole('table', { name: 'Side-by-side outputs' }).count()).toBe(0);
    await screenshot(page, '10-compare-blind');
    for (let i = 0; i < 2; i++) {
      const a = (await blind.getByTestId('answer-a').innerText()).trim();
      await blind.getByRole('button', { name: ['green', 'white'].includes(a) ? /A is better/ : /B is better/ }).click();
      await blind.getByText(/You preferred tiny-llama \+ colors/).waitFor();
      await blind.getByRole('button', { name: /Next pair/ }).click();
    }
    await blind.getByText('All pairs rated.').waitFor();
    expect(await blind.getByTestId('tally').innerText()).toMatch(/tiny-llama \+ colors: 2 wins/);
    await screenshot(page, '11-compare-rated');
  });

  it('settings and the dark theme', async () => {
    await nav('Settings');
    await page.getByRole('heading', { name: 'Engine' }).waitFor();
    await screenshot(page, '12-settings');
    await page.getByRole('button', { name: 'Switch theme' }).click();
    await nav('Runs');
    await page.getByRole('row').filter({ hasText: 'colors' }).getByRole('link', { name: 'colors' }).click();
    await page.getByRole('region', { name: 'Run details' }).waitFor();
    await screenshot(page, '13-runs-dark');
    await nav('Train');
    await page.getByRole('region', { name: 'Run long run' }).waitFor();
    await screenshot(page, '14-train-dark');
  });
});
