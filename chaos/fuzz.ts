/**
 * Scenario 3, fuzzing: generated and mutated manifests go through the loader in-process (for
 * volume) and a sample of them through `agent apply -f` (the real CLI): every exit is 0 or 2, no
 * stack trace reaches the user, and a refused manifest leaves the registry byte-for-byte as it
 * was (`sqlite3 .dump`). Then registry rows a master could write (each breaking one rule, and
 * random JSON in the JSON columns) go in with sqlite3: `status --json` and `run --once` never
 * crash (exit 0 or 1, no stack trace), and every rule-breaking row shows `invalid`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { ValidationError } from '../src/errors.js';
import { loadManifestText } from '../src/manifest/load.js';
import { podmanPs, type StatusJson } from '../test/helpers/agent.js';
import { STACK_TRACE as STACK } from './lib/bounded.js';
import type { ChaosSizes } from './lib/config.js';
import type { Janitor } from './lib/janitor.js';
import { Tally } from './lib/report.js';
import { BAD_ROWS, manifestInput, nestingBombs, randomRow, type ManifestInput } from './fuzz-inputs.js';

export const FUZZ_INVARIANTS = [
  'loader: only validation errors',
  'apply: exit 0 or 2',
  'apply: no stack trace',
  'apply: a refused manifest changes nothing',
  'rows: status and run --once exit 0 or 1',
  'rows: no stack trace',
  'rows: a rule-breaking row shows invalid',
  'rows: nothing runs for an invalid row',
];


const sql = (v: string | number | null): string => (v === null ? 'NULL' : typeof v === 'number' ? String(v) : `'${v.replace(/'/g, "''")}'`);

function short(s: string, n = 160): string {
  return JSON.stringify(s.length > n ? `${s.slice(0, n)}…(${s.length} chars)` : s);
}

export async function runFuzz(j: Janitor, sizes: ChaosSizes, log: (m: string) => void): Promise<Tally> {
  const tally = new Tally('fuzz', FUZZ_INVARIANTS);
  const inputs: ManifestInput[] = [...nestingBombs(), ...fc.sample(manifestInput, { numRuns: sizes.fuzzRuns, seed: sizes.seed })];

  // In-process: every input, for volume.
  let accepted = 0;
  for (const input of inputs) {
    try {
      loadManifestText(input.text, input.format, 'fuzz');
      accepted++;
    } catch (err) {
      if (!(err instanceof ValidationError)) tally.violate('loader: only validation errors', `${input.how} ${input.format} ${short(input.text)}: ${(err as Error).stack?.split('\n').slice(0, 3).join(' | ')}`);
    }
  }
  tally.figure('manifests fuzzed in-process', inputs.length);
  tally.figure('of which valid', accepted);

  // Through the CLI: the bombs and a sample (spawning the CLI costs ~300 ms an input).
  const node = j.node();
  await node.apply('name = "fzbase"\nactive = false\n[[components]]\nname = "a"\nruntime = "container"\nimage = "localhost/agent-busybox:latest"\n');
  const dump = async (): Promise<string> => (await j.children.must('sqlite3', [node.db, '.dump'], 30_000)).stdout;
  const every = Math.max(1, Math.floor(inputs.length / Math.max(1, Math.ceil(sizes.fuzzRuns / 25))));
  const sample = inputs.filter((input, i) => input.how.includes('bomb') || i % every === 0);
  let before = await dump();
  let n = 0;
  for (const input of sample) {
    const file = join(node.dir, `fuzz-${n++}.${input.format}`);
    writeFileSync(file, input.text);
    const r = await node.cli(['apply', '-f', file]);
    const what = `${input.how} ${input.format} ${short(input.text)} → exit ${r.exitCode}: ${short(r.stderr, 400)}`;
    tally.expect('apply: exit 0 or 2', r.exitCode === 0 || r.exitCode === 2, () => what);
    tally.expect('apply: no stack trace', !STACK.test(r.stderr), () => what);
    const after = await dump();
    if (r.exitCode === 0) before = after;
    else tally.expect('apply: a refused manifest changes nothing', after === before, () => what);
  }
  tally.figure('manifests through agent apply', sample.length);
  log(`  fuzz: ${inputs.length} manifests in-process, ${sample.length} through the CLI`);

  // Registry rows written by a "master".
  const randomRows = fc.sample(randomRow, { numRuns: Math.max(5, Math.ceil(sizes.fuzzRuns / 50)), seed: sizes.seed });
  const rows = [...BAD_ROWS.map((b) => ({ breaks: b.breaks as string | undefined, columns: b.columns })), ...randomRows.map((columns) => ({ breaks: undefined, columns }))];
  const written: Array<{ workload: string; breaks: string | undefined }> = [];
  for (const [i, r] of rows.entries()) {
    const svc = `fzr${i}`;
    const cols = Object.keys(r.columns);
    const stmt = `PRAGMA foreign_keys = ON; BEGIN IMMEDIATE; INSERT INTO services (name) VALUES ('${svc}');
      INSERT INTO components (service, name, ${cols.join(', ')}) VALUES ('${svc}', 'c', ${cols.map((c) => sql(r.columns[c]!)).join(', ')}); COMMIT;`;
    const w = await j.children.run('sqlite3', ['-bail', '-cmd', '.timeout 5000', node.db, stmt], { timeoutMs: 30_000 });
    if (w.code === 0) written.push({ workload: `${svc}-c`, breaks: r.breaks });
    else tally.add('rows refused by SQLite itself');
  }
  tally.figure('registry rows written', written.length);
  for (const args of [['status', '--json'], ['run', '--once'], ['status', '--json']]) {
    const r = await node.cli(args);
    const what = `agent ${args.join(' ')} → exit ${r.exitCode}: ${short(r.stderr, 600)}`;
    tally.expect('rows: status and run --once exit 0 or 1', r.exitCode === 0 || r.exitCode === 1, () => what);
    tally.expect('rows: no stack trace', !STACK.test(r.stderr), () => what);
    if (args[0] !== 'status' || r.exitCode !== 0) continue;
    const st = JSON.parse(r.stdout) as StatusJson;
    for (const w of written.filter((x) => x.breaks)) {
      const row = st.components.find((c) => c.workload === w.workload);
      tally.expect('rows: a rule-breaking row shows invalid', row?.drift === 'invalid', () => `${w.breaks}: ${row ? `${row.drift} (${row.reason})` : 'no status row'}`);
    }
  }
  const running = new Set((await podmanPs(node.agentId())).map((c) => c.Names[0]));
  for (const w of written.filter((x) => x.breaks)) tally.expect('rows: nothing runs for an invalid row', !running.has(w.workload), () => `${w.breaks}: ${w.workload} has a container`);
  return tally;
}
