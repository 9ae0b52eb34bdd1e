// A new user's path through the app, in a real browser against the real serve mode and engine:
// add a model, import a malformed and a good dataset, train (watching the chart move, reloading mid-run),
// cancel a queued run, chat with the trained adapter, compare it with the base model and rate blind, then
// train LoRA and a full fine-tune and evaluate all of them (the method table, its CSV, a local LLM judge
// too small for its prompt, blind rating).
// Screenshots of every page go to test-output/e2e/.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { strFromU8, unzipSync } from 'fflate';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { METHOD_TABLE_COLUMNS } from '../src-shared/method-table.js';
import { COLOR_DATA } from '../test/helpers/color-task.js';
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

/** "648", "1.8K", "37.9K", "2.10M" (formatCount) -> a number. */
function parseCount(text: string): number {
  const m = /^([\d.]+)([KMB]?)$/.exec(text.trim());
  if (!m) throw new Error(`not a count: ${JSON.stringify(text)}`);
  return Number(m[1]) * { '': 1, K: 1e3, M: 1e6, B: 1e9 }[m[2] as '' | 'K' | 'M' | 'B'];
}

/** Presses "New chat" and waits until the conversation it created is the open one (not one open before). */
async function newChat(): Promise<void> {
  const created = page.waitForResponse((r) => r.url().includes('/api/call/chats.create'));
  await page.getByRole('button', { name: 'New chat' }).click();
  const answer = (await (await created).json()) as { value: { id: string } };
  await page.locator(`section[data-chat-id="${answer.value.id}"]`).waitFor();
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

  it('serves no source maps: the bundle has none', () => {
    const assets = readdirSync(join(import.meta.dirname, '..', 'dist', 'renderer', 'assets'));
    expect(assets.some((f) => f.endsWith('.js'))).toBe(true);
    expect(assets.filter((f) => f.endsWith('.map'))).toEqual([]);
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
    await long.getByText('running').first().waitFor({ timeout: 60_000 });
    await long.getByRole('button', { name: 'Cancel' }).click();
    await long.locator('[data-status=cancelled]').waitFor();

    await nav('Runs');
    const row = page.getByRole('row').filter({ hasText: 'colors' });
    await row.getByText('completed').waitFor();
    await page.getByRole('row').filter({ hasText: 'long run' }).getByText('cancelled').waitFor();
    await row.getByRole('link', { name: 'colors' }).click();
    await page.getByRole('region', { name: 'Run details' }).waitFor();
    await screenshot(page, '07-runs');

    // The cancelled run is renamed, then deleted with its files (the confirmation is accepted).
    await page.getByRole('row').filter({ hasText: 'long run' }).getByRole('link', { name: 'long run' }).click();
    const details = page.getByRole('region', { name: 'Run details' });
    await details.getByRole('heading', { name: 'long run' }).waitFor();
    await details.getByRole('button', { name: 'rename' }).click();
    await details.getByLabel('Run name').fill('given up');
    await details.getByRole('button', { name: 'Save' }).click();
    await details.getByRole('heading', { name: 'given up' }).waitFor();
    await page.getByRole('row').filter({ hasText: 'given up' }).waitFor();
    await details.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('row').filter({ hasText: 'given up' }).waitFor({ state: 'detached' });
    expect(await page.getByRole('row').filter({ hasText: 'colors' }).count()).toBe(1);
  });

  it('chats with the trained adapter, which answers what it learned', async () => {
    await nav('Chat');
    await newChat();
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
    // Every sampling setting is here, checked as typed: an out-of-range value is named beside its field, not sent.
    await page.getByLabel('Max new tokens').fill('-5');
    await page.getByLabel('Max new tokens').blur();
    await page.getByText('a whole number from 1 to 4096; still 64').waitFor();
    await page.getByLabel('Max new tokens').fill('64');
    await page.getByLabel('Max new tokens').blur();
    await page.getByText('a whole number from 1 to 4096; still 64').waitFor({ state: 'detached' });
    expect(await page.getByLabel('Repetition penalty').inputValue()).toBe('1');
    // Named presets set every field at once: the paper's (official example.py), then greedy, which this compares with.
    const presets = page.getByRole('group', { name: 'Sampling presets' });
    await presets.getByRole('button', { name: 'Paper' }).click();
    expect(await page.getByLabel('Temperature').inputValue()).toBe('0.1');
    expect(await page.getByLabel('Top-p').inputValue()).toBe('0.75');
    expect(await presets.getByRole('button', { name: 'Paper' }).getAttribute('aria-pressed')).toBe('true');
    await presets.getByRole('button', { name: 'Greedy' }).click();
    expect(await page.getByLabel('Temperature').inputValue()).toBe('0');
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

  it('trains LoRA and a full fine-tune, evaluates them beside the base model, the adapter and imported outputs, and exports the method table', async () => {
    // The Train page's method selector: each method's preset, then a quick recipe the tiny model learns in seconds.
    await nav('Train');
    await page.getByRole('heading', { name: 'New run' }).waitFor();
    const fill = async (label: string, value: string) => page.getByLabel(label, { exact: true }).fill(value);
    const quick = [
      { method: 'lora', name: 'colors-lora', epochs: '60', lr: '0.05' },
      { method: 'full', name: 'colors-full', epochs: '20', lr: '0.003' },
    ];
    for (const q of quick) {
      await page.getByLabel('Method', { exact: true }).selectOption(q.method);
      // The preset has arrived when the method's own fields show: LoRA's rank; none for a full fine-tune.
      if (q.method === 'lora') await page.getByLabel('Rank r').waitFor();
      else await page.getByLabel('Rank r').waitFor({ state: 'detached' });
      expect(await page.getByLabel('Prompt length K').count()).toBe(0);
      await fill('Epochs', q.epochs);
      await fill('Warm-up epochs', '1');
      await fill('Batch size', '3');
      await fill('Gradient accumulation', '2');
      await page.getByLabel('Peak learning rate (optional)').fill(q.lr);
      await page.getByLabel('Run name').fill(q.name);
      await page.getByText('Fix the fields marked in red first.').waitFor({ state: 'detached' });
      await page.getByRole('button', { name: /Start training|Add to queue/ }).click();
      await page.getByText(new RegExp(`(Started|Queued) “${q.name}”`)).first().waitFor();
    }
    // The queue trains them one after the other.
    await nav('Runs');
    for (const [name, method] of [['colors-lora', 'lora'], ['colors-full', 'full']]) {
      const row = page.getByRole('row').filter({ has: page.getByRole('link', { name, exact: true }) });
      await row.getByText('completed').waitFor({ timeout: 120_000 });
      expect(await row.getByRole('cell', { name: method, exact: true }).count()).toBe(1);
    }

    // Evaluate: the columns start as the base model and every completed run trained on it.
    await nav('Evaluate');
    const form = page.getByRole('form', { name: 'New evaluation' });
    await form.waitFor();
    const column = (n: number) => form.getByRole('combobox', { name: `Column ${n}`, exact: true });
    await form.getByRole('group', { name: 'Column 4' }).waitFor();
    expect(await column(1).locator('option:checked').innerText()).toBe('tiny-llama');
    expect(await column(2).locator('option:checked').innerText()).toMatch(/LLaMA-Adapter: tiny-llama \+ colors$/);
    expect(await column(3).locator('option:checked').innerText()).toMatch(/LoRA: tiny-llama \+ colors-lora$/);
    expect(await column(4).locator('option:checked').innerText()).toMatch(/full fine-tune: colors-full$/);
    // The fixture has no test split: the form falls back to all examples and says that they are held in.
    expect(await form.getByLabel('Split', { exact: true }).inputValue()).toBe('all');
    await form.getByText(/No dataset has a test split yet/).waitFor();
    await form.getByLabel('Name', { exact: true }).fill('methods');
    await form.getByLabel('Max new tokens').fill('8');
    // A fifth column: outputs made elsewhere, imported as JSON ({prompt, response} pairs). One prompt missing
    // first: the server's complaint shows beside that column.
    await form.getByRole('button', { name: '+ Add a column' }).click();
    await column(5).selectOption('refs');
    const refs = (data: typeof COLOR_DATA) => ({ name: 'alpaca.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(data.map((e) => ({ prompt: e.instruction, response: e.output })))) });
    await form.getByLabel('Reference outputs file for column 5').setInputFiles(refs(COLOR_DATA.slice(1)));
    await form.getByRole('group', { name: 'Column 5' }).getByLabel('Label', { exact: true }).fill('Alpaca outputs');
    await form.getByRole('button', { name: /Start evaluation/ }).click();
    await form.getByRole('group', { name: 'Column 5' }).getByRole('alert').filter({ hasText: 'has no response for 1 of the 6 prompts' }).waitFor();
    await form.getByLabel('Reference outputs file for column 5').setInputFiles(refs(COLOR_DATA));
    await form.getByRole('group', { name: 'Column 5' }).getByRole('alert').waitFor({ state: 'detached' });
    await screenshot(page, '12-evaluate');
    await form.getByRole('button', { name: /Start evaluation/ }).click();

    const results = page.getByRole('region', { name: 'Evaluation methods' });
    await results.locator('[data-status=completed]').waitFor({ timeout: 90_000 });
    const scores = await results.getByRole('table', { name: 'Scores per column' }).locator('tbody tr').allInnerTexts();
    expect(scores).toHaveLength(5);
    for (const row of scores) expect(row).toMatch(/6 \/ 6/);
    expect(scores[4]).toMatch(/Alpaca outputs\s+imported\s+6 \/ 6\s+100\.0%\s+100\.0%\s+100\.0%/);

    // The method table: one row per column, the trained ones with their cost in numbers.
    const table = page.getByRole('table', { name: 'Method table' });
    const cell = (kind: string, col: string) => table.locator(`tr[data-kind=${kind}] td[data-col=${col}]`).innerText();
    expect(await table.locator('tbody tr').count()).toBe(5);
    for (const kind of ['adapter', 'lora', 'full']) {
      expect(parseCount(await cell(kind, 'trainable_params'))).toBeGreaterThan(0);
      expect(await cell(kind, 'storage_bytes')).toMatch(/\d( B| KiB| MiB)$/);
      expect(Number(await cell(kind, 'train_seconds'))).toBeGreaterThan(0);
      expect(await cell(kind, 'peak_memory_bytes')).toMatch(/\d MiB$/);
      expect(await cell(kind, 'exact_match')).toMatch(/^\d+\.\d%$/);
    }
    expect(await cell('base', 'trainable_params')).toBe('0');
    expect(parseCount(await cell('adapter', 'trainable_params'))).toBeLessThan(parseCount(await cell('full', 'trainable_params')));
    expect(await cell('references', 'exact_match')).toBe('100.0%');
    await screenshot(page, '13-method-table');

    // Export CSV: the shared header, one line per column, raw numbers.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
    expect(download.suggestedFilename()).toBe('methods-method-table.csv');
    const csv = readFileSync((await download.path())!, 'utf8').trim().split('\r\n');
    expect(csv[0]).toBe(METHOD_TABLE_COLUMNS.map((c) => c.header).join(','));
    expect(csv).toHaveLength(6);
    expect(csv[4].split(',').slice(0, 2)).toEqual(['colors-full', 'full']);
    expect(Number(csv[2].split(',')[2])).toBeLessThan(Number(csv[4].split(',')[2]));

    // The LLM judge, a model here: the tiny model's 256 positions cannot hold the review prompt, and the
    // page says which item, how long the prompt is and what the model reads.
    const pair = page.getByRole('region', { name: 'Two columns head to head' });
    await pair.getByLabel('Judge', { exact: true }).selectOption('local');
    await pair.getByRole('combobox', { name: 'Base model' }).selectOption({ label: 'tiny-llama' });
    await pair.getByRole('button', { name: 'Ask the judge' }).click();
    await pair
      .getByRole('alert')
      .filter({ hasText: /judging item 1 of 6: the prompt has \d+ tokens; this model reads at most 256/ })
      .waitFor({ timeout: 60_000 });
    await pair.getByRole('button', { name: 'Ask the judge' }).waitFor(); // not stuck at "Judging…"

    // Blind rating of the base model against the adapter, on the Compare page.
    expect(await pair.getByLabel('Column B').locator('option:checked').innerText()).toBe('tiny-llama + colors');
    await pair.getByRole('button', { name: 'Rate blind' }).click();
    const blind = page.getByRole('region', { name: 'Blind rating' });
    await blind.getByText('Pair 1 of 6').waitFor();
    expect(page.url()).toMatch(/#\/compare\/[^/]+\/blind$/);
    await blind.getByRole('button', { name: /Tie/ }).click();
    await blind.getByText('Rated.').waitFor();

    // Coming back to Evaluate reopens the evaluation last looked at.
    await nav('Evaluate');
    await page.getByRole('region', { name: 'Evaluation methods' }).getByRole('table', { name: 'Scores per column' }).waitFor();
    expect(page.url()).toMatch(/#\/evaluate\/[^/]+$/);
  });

  it('settings and the dark theme', async () => {
    await nav('Settings');
    await page.getByRole('heading', { name: 'Engine' }).waitFor();
    await screenshot(page, '14-settings');
    await page.getByRole('button', { name: 'Switch theme' }).click();
    await nav('Runs');
    await page.getByRole('row').filter({ hasText: 'colors' }).getByRole('link', { name: 'colors', exact: true }).click();
    await page.getByRole('region', { name: 'Run details' }).waitFor();
    await screenshot(page, '15-runs-dark');
    await nav('Train');
    await page.getByRole('region', { name: 'Run colors-full' }).waitFor();
    await screenshot(page, '16-train-dark');
  });
});

describe('multi-modal: a vision tower, a run that reads pictures, a chat with a picture', () => {
  const CLIP = join(import.meta.dirname, '..', 'test', 'fixtures', 'clip');
  const SQA = join(import.meta.dirname, '..', 'test', 'fixtures', 'scienceqa');

  it('adds a CLIP folder as a vision tower and trains a multi-modal adapter on a ScienceQA folder', async () => {
    await nav('Models');
    await page.getByLabel('Model folder').fill(join(CLIP, 'clip-full'));
    await page.getByLabel('Name (optional)').fill('tiny-clip');
    await page.getByRole('button', { name: 'Add model' }).click();
    const details = page.getByRole('region', { name: 'Model details' });
    await details.getByRole('heading', { name: 'tiny-clip' }).waitFor();
    await details.getByText('CLIP vision tower').waitFor();
    expect(await details.innerText()).toMatch(/image_embeds, 16 values/);
    await page.getByRole('list', { name: 'Models' }).getByText(/vision tower/).waitFor();
    await screenshot(page, '20-models-vision');

    // Path import of a folder is an API call (the page imports files); the dataset then shows its pictures.
    const imported = await fetch(`${server.origin}/api/call/datasets.import`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${server.token}`, 'Content-Type': 'application/json', Origin: server.origin },
      body: JSON.stringify({ source: { kind: 'path', path: SQA }, options: { format: 'scienceqa' }, name: 'sqa', onInvalid: 'reject' }),
    });
    expect(imported.status).toBe(200);
    await nav('Datasets');
    await page.getByRole('list', { name: 'Datasets' }).getByRole('link', { name: /sqa/ }).click();
    await page.getByRole('row').filter({ hasText: 'Which animal is a fish?' }).first().click();
    await page.getByRole('region', { name: /Edit example/ }).getByRole('img', { name: "the example's picture" }).waitFor();
    // Thumbnails in the table, the picture count in the header, a has-picture filter.
    const table = page.getByRole('table', { name: 'Examples' });
    await table.getByRole('img', { name: /^picture of example \d+$/ }).first().waitFor();
    expect(await table.getByRole('img', { name: /^picture of example \d+$/ }).count()).toBe(6);
    await page.getByText(/12 examples .* 6 with pictures/).waitFor();
    await page.getByLabel('Picture filter').selectOption('no');
    await page.getByTestId('example-count').filter({ hasText: '6 shown' }).waitFor();
    await screenshot(page, '19-datasets-pictures');

    // Give an example a picture, take it off again, and undo both: each is a version of its own.
    await table.getByRole('row').nth(1).click();
    const editor = page.getByRole('region', { name: /Edit example/ });
    await editor.getByText('No picture').waitFor();
    await editor.getByLabel('Picture file').setInputFiles(join(CLIP, 'images', 'rgb-32.png'));
    await editor.getByRole('img', { name: "the example's picture" }).waitFor();
    await page.getByText(/12 examples .* 7 with pictures/).waitFor();
    await page.getByTestId('example-count').filter({ hasText: '5 shown' }).waitFor();
    await editor.getByRole('button', { name: 'Remove picture' }).click();
    await editor.getByText('No picture').waitFor();
    await page.getByText(/12 examples .* 6 with pictures/).waitFor();
    await page.getByRole('button', { name: 'Undo last change' }).click();
    await page.getByText(/12 examples .* 7 with pictures/).waitFor();
    await page.getByRole('button', { name: 'Undo last change' }).click();
    await page.getByText(/12 examples .* 6 with pictures/).waitFor();
    await page.getByLabel('Picture filter').selectOption('');

    // Export with pictures: a zip with the data file and images/ beside it.
    await page.getByRole('tab', { name: 'Export' }).click();
    expect(await page.getByLabel(/with the pictures/).isChecked()).toBe(true);
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download' }).click()]);
    expect(download.suggestedFilename()).toBe('sqa.zip');
    const files = unzipSync(new Uint8Array(readFileSync((await download.path())!)));
    const records = JSON.parse(strFromU8(files['sqa.json']!)) as { image?: string }[];
    expect(records).toHaveLength(12);
    const named = [...new Set(records.flatMap((r) => (r.image ? [r.image] : [])))];
    expect(Object.keys(files).filter((f) => f.startsWith('images/')).sort()).toEqual(named.sort());
    await page.getByRole('tab', { name: 'Examples' }).click();

    await nav('Train');
    await page.getByRole('heading', { name: 'New run' }).waitFor();
    await page.getByLabel('Dataset').selectOption({ label: 'sqa (12)' });
    // A dataset with a train split trains on it by default: its test split stays unseen for Evaluate.
    expect(await page.getByLabel('Examples').inputValue()).toBe('train');
    const fill = async (label: string, value: string) => page.getByLabel(label, { exact: true }).fill(value);
    // The paper's preset drops the last partial batch: the 3 train examples need a batch of at most 3.
    await page.getByText(/make no whole batch of 4/).waitFor();
    await fill('Batch size', '3');
    await fill('Gradient accumulation', '1');
    await fill('Epochs', '4');
    await fill('Warm-up epochs', '1');
    await fill('Max sequence length', '256');
    const before = await page.getByTestId('trainable-params').innerText();
    await page.getByLabel('Images').selectOption({ label: 'multi-modal with tiny-clip' });
    await page.waitForFunction((b) => document.querySelector('[data-testid=trainable-params]')?.textContent !== b, before);
    expect(await page.getByLabel('Image feature').inputValue()).toBe('projected');
    // The projection's width is part of the plan: a narrower one trains fewer parameters.
    const wide = await page.getByTestId('trainable-params').innerText();
    // A width the contract refuses: the server's complaint shows beside the field, in words, and nothing starts.
    await page.getByLabel('Projection width').fill('0');
    await page.getByLabel('Projection width').blur();
    await page.locator('#train-vision-hidden-error').filter({ hasText: /too small|at least 1|>=\s*1/i }).waitFor();
    await page.getByText('Fix the fields marked in red first.').waitFor();
    await page.getByLabel('Projection width').fill('16');
    await page.getByLabel('Projection width').blur();
    await page.waitForFunction((w) => document.querySelector('[data-testid=trainable-params]')?.textContent !== w, wide);
    await page.getByLabel('Run name').fill('mm');
    await page.getByText('Fix the fields marked in red first.').waitFor({ state: 'detached' });
    await page.getByRole('button', { name: /Start training/ }).click();
    await page.getByRole('region', { name: 'Run mm' }).getByText('completed').first().waitFor({ timeout: 120_000 });
    await screenshot(page, '21-train-multimodal');
  });

  it("evaluates the multi-modal run beside a text-only adapter and the base model, and shows ScienceQA's table", async () => {
    await nav('Evaluate');
    // The page reopens the evaluation last looked at (its form folded), or shows the form when there is none.
    const open = page.getByRole('button', { name: 'Set up a new evaluation' });
    await open.or(page.getByRole('heading', { name: 'No evaluations yet' })).first().waitFor();
    if (await open.count()) await open.click();
    const form = page.getByRole('form', { name: 'New evaluation' });
    await form.waitFor();
    await form.getByRole('button', { name: 'Use base + its runs' }).click();
    // Keep the base model, the text-only adapter (colors) and the multi-modal one (mm).
    const groups = form.getByRole('group', { name: /^Column \d+$/ });
    for (let i = (await groups.count()) - 1; i >= 0; i--) {
      const label = await groups.nth(i).locator('select option:checked').first().innerText();
      if (!/^tiny-llama$|: tiny-llama \+ (colors|mm)$/.test(label)) await groups.nth(i).getByRole('button', { name: /^Remove column/ }).click();
    }
    expect(await groups.count()).toBe(3);
    const dataset = await form.getByLabel('Dataset', { exact: true }).locator('option', { hasText: /^sqa/ }).getAttribute('value');
    await form.getByLabel('Dataset', { exact: true }).selectOption(dataset!);
    await form.getByLabel('Split', { exact: true }).selectOption('test');
    await form.getByLabel('Name', { exact: true }).fill('sqa-eval');
    await form.getByLabel('Max new tokens').fill('8');
    await form.getByRole('button', { name: /Start evaluation/ }).click();

    const results = page.getByRole('region', { name: 'Evaluation sqa-eval' });
    await results.locator('[data-status=completed]').waitFor({ timeout: 120_000 });
    const sqa = page.getByRole('table', { name: 'ScienceQA accuracy' });
    await sqa.waitFor();
    expect(await sqa.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-kind')))).toEqual(['base', 'adapter', 'multimodal']);
    for (const kind of ['base', 'adapter', 'multimodal']) {
      expect(await sqa.locator(`tr[data-kind=${kind}] td[data-col=acc_has_image]`).innerText()).toMatch(/^\d+\.\d\d$/);
      expect(await sqa.locator(`tr[data-kind=${kind}] td[data-col=acc_average]`).innerText()).toMatch(/^\d+\.\d\d$/);
    }
    // Each question's picture beside it in the answers.
    const answers = page.getByRole('table', { name: 'Per-example outputs' });
    expect(await answers.getByRole('img', { name: /^picture of example \d+$/ }).count()).toBe(4);
    await screenshot(page, '23-evaluate-scienceqa');
  });

  it('compares the text-only base and the multi-modal adapter on one picture', async () => {
    await nav('Compare');
    await page.getByLabel('Prompts (one per line)').fill('Which animal is a fish?');
    const mmAdapter = page.getByLabel('Adapter').nth(1);
    await mmAdapter.selectOption((await mmAdapter.locator('option', { hasText: ': mm' }).getAttribute('value'))!);
    await page.getByLabel('Adapter').nth(0).selectOption('');
    await page.getByLabel('Picture file').setInputFiles(join(CLIP, 'images', 'rgb.jpg'));
    await page.getByText('Multi-modal columns see this picture').waitFor();
    await page.getByLabel('Max new tokens').fill('4');
    await page.getByRole('button', { name: /^Compare/ }).click();
    await page.locator('[data-cell="0:1"][data-done=true]').waitFor({ timeout: 60_000 });
    const grid = page.getByRole('table', { name: 'Side-by-side outputs' });
    await grid.getByRole('img', { name: 'picture of prompt 1' }).waitFor();
    expect(await grid.locator('.error').count()).toBe(0);
    await page.getByRole('tab', { name: 'Rate blind' }).click();
    await page.getByRole('region', { name: 'Blind rating' }).getByRole('img', { name: "the prompt's picture" }).waitFor();
    await screenshot(page, '24-compare-picture');
  });

  it('chats with the multi-modal adapter and a picture; the picture stays in the conversation', async () => {
    await nav('Chat');
    await newChat();
    const chat = page.getByRole('region', { name: 'Conversation' });
    // The base model alone takes no pictures: it says so at once instead of failing when the message is sent.
    await chat.getByLabel('Adapter').selectOption('');
    await chat.getByTitle(/This model takes no pictures/).waitFor(); // the chat's model is saved first
    await chat.getByLabel('Attach a picture').setInputFiles(join(CLIP, 'images', 'rgb.jpg'));
    await chat.getByText('This model takes no pictures').waitFor();
    const adapter = await chat.getByLabel('Adapter').locator('option', { hasText: ': mm' }).getAttribute('value');
    await chat.getByLabel('Adapter').selectOption(adapter!);
    await chat.getByLabel('Attach a picture').setInputFiles(join(CLIP, 'images', 'rgb.jpg'));
    await chat.getByRole('img', { name: 'rgb.jpg' }).waitFor();
    await chat.getByLabel('Message').fill('Which animal is a fish?');
    await chat.getByLabel('Message').press('Enter');
    await chat.locator('[data-role=assistant] .bubble').first().waitFor({ timeout: 60_000 });
    await chat.locator('[data-role=user] .bubble img').first().waitFor();
    await screenshot(page, '22-chat-picture');
    // A picture dropped on the composer is attached too.
    const png = readFileSync(join(CLIP, 'images', 'rgb-32.png')).toString('base64');
    const dropped = await page.evaluateHandle((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
      return transfer;
    }, png);
    await chat.locator('form.composer').dispatchEvent('drop', { dataTransfer: dropped });
    await chat.getByRole('img', { name: 'dropped.png' }).waitFor();
  });
});

describe('sweeps: the paper ablations from the app', () => {
  it('sweeps adapted layers x zero/random init: a preview, every run trained and evaluated, the table, plots and CSV', async () => {
    await nav('Sweeps');
    const form = page.getByRole('region', { name: 'New sweep' });
    await form.waitFor();
    await form.getByLabel('Model', { exact: true }).selectOption({ label: 'tiny-llama' });
    const dataset = await form.getByLabel('Dataset', { exact: true }).locator('option', { hasText: /^sqa/ }).getAttribute('value');
    await form.getByLabel('Dataset', { exact: true }).selectOption(dataset!);
    await form.getByLabel('Max steps per run').fill('2');
    await form.getByLabel('Batch size').fill('1');
    await form.getByLabel('Setting 1', { exact: true }).fill('adapterLayers');
    await form.getByLabel('Values (comma-separated)').first().fill('1,2');
    await form.getByRole('button', { name: /Second setting/ }).click();
    await form.getByLabel('Setting 2', { exact: true }).fill('init');
    await form.getByLabel('Values (comma-separated)').nth(1).fill('zero,random');
    await form.getByLabel('First N held-out examples').fill('2');
    await form.getByLabel('Max new tokens').fill('2');
    await form.getByLabel('Name', { exact: true }).fill('ablation');
    // The preview: how many runs before anything starts.
    const preview = form.getByTestId('sweep-preview');
    await preview.getByText('4 runs').waitFor();
    expect(await preview.innerText()).toMatch(/8 optimizer steps · each evaluated on 2 examples/);
    // A value the field does not take is named before starting.
    await form.getByLabel('Values (comma-separated)').nth(1).fill('zero,gaussian');
    await preview.getByText(/init cannot be "gaussian"/).waitFor();
    await expect(form.getByRole('button', { name: 'Start sweep' }).isDisabled()).resolves.toBe(true);
    await form.getByLabel('Values (comma-separated)').nth(1).fill('zero,random');
    await preview.getByText('4 runs').waitFor();
    await form.getByRole('button', { name: 'Start sweep' }).click();

    const results = page.getByRole('region', { name: 'Sweep results' });
    const table = results.getByTestId('sweep-table');
    await table.locator('tbody tr').nth(3).waitFor();
    await results.getByText('4 of 4 points finished').waitFor({ timeout: 180_000 });
    expect(await table.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-state')))).toEqual(['done', 'done', 'done', 'done']);
    expect(await table.locator('tbody tr').first().locator('td').evaluateAll((cells) => cells.slice(0, 2).map((c) => c.textContent))).toEqual(['1', 'zero']);
    // One line per init value in the metric plot; four loss curves.
    expect(await results.getByTestId('sweep-plot').locator('polyline').count()).toBe(2);
    expect(await results.getByTestId('sweep-loss').locator('polyline').count()).toBe(4);
    await page.getByRole('region', { name: 'Sweeps' }).locator('[data-status=completed]').first().waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), results.getByRole('button', { name: 'CSV' }).click()]);
    const csv = readFileSync((await download.path())!, 'utf8').trim().split('\r\n');
    expect(csv[0]).toMatch(/^adapterLayers,init,state,train_examples,exact_match/);
    expect(csv.slice(1).map((l) => l.split(',').slice(0, 3).join(','))).toEqual(['1,zero,done', '1,random,done', '2,zero,done', '2,random,done']);
    // Every point is an ordinary run in the history.
    await nav('Runs');
    await page.getByText('ablation · adapterLayers=2, init=random').first().waitFor();
    await screenshot(page, '25-runs-after-sweep');
    await nav('Sweeps');
    await results.waitFor();
    await screenshot(page, '26-sweeps');
  }, 240_000);
});
