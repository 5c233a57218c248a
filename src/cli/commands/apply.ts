/** `agent apply -f`: validate manifests and write them to the registry in one transaction. */
import { readFileSync, statSync } from 'node:fs';
import { Command, Option } from 'commander';
import { checkBootFiles } from '../../agent/images.js';
import { checkHealthSsh } from '../../agent/health/apply-check.js';
import { vmPaths } from '../../config/config.js';
import { ValidationError } from '../../errors.js';
import { APPLY_ORIGINS, type Origin } from '../../manifest/diff.js';
import { loadManifestDir, loadManifestFile, loadManifestStdin, type ManifestFormat } from '../../manifest/load.js';
import type { ServiceSpec } from '../../manifest/schema.js';
import { planAgainst, type ApplyResult } from '../../registry/desired.js';
import { DURATION_RULE, parseDuration } from '../../duration.js';
import { waitApplied } from '../apply-wait.js';
import { print, settings, withRegistry } from '../common.js';

function readManifests(file: string, format: ManifestFormat | undefined): ServiceSpec[] {
  if (file === '-') return loadManifestStdin(readFileSync(0, 'utf8'), format);
  let isDir = false;
  try {
    isDir = statSync(file).isDirectory();
  } catch (err) {
    throw new ValidationError(file, [{ field: '(file)', rule: `cannot be read: ${(err as Error).message}` }]);
  }
  return isDir ? loadManifestDir(file) : [loadManifestFile(file)];
}

interface ApplyCliOpts {
  file: string[];
  prune?: boolean;
  allowEmpty?: boolean;
  format?: ManifestFormat;
  origin: Origin;
  dryRun?: boolean;
  json?: boolean;
  wait?: boolean;
  waitTimeout: string;
}

/**
 * Every -f given, in order (kubectl's habit: `-f a.toml -f b.toml`), as one set: a service named
 * by two of them is refused, naming both, rather than the later one silently winning.
 */
function readAll(files: string[], format: ManifestFormat | undefined): ServiceSpec[] {
  if (files.filter((f) => f === '-').length > 1) throw new ValidationError('apply flags', [{ field: '--file', rule: '- (stdin) may be given once' }]);
  const from = new Map<string, string>();
  const specs: ServiceSpec[] = [];
  const issues: Array<{ field: string; rule: string }> = [];
  for (const file of files) {
    for (const spec of readManifests(file, format)) {
      const first = from.get(spec.name);
      if (first !== undefined) issues.push({ field: '--file', rule: `service ${spec.name} is in both ${first} and ${file === '-' ? 'stdin' : file}: a service may be given once` });
      else (from.set(spec.name, file === '-' ? 'stdin' : file), specs.push(spec));
    }
  }
  if (issues.length > 0) throw new ValidationError('apply', issues);
  return specs;
}

/** One line per service (or the JSON the master's `fleet` reads); `note` heads a dry run. */
function printApply(res: ApplyResult, specs: ServiceSpec[], opts: ApplyCliOpts, note?: string): void {
  if (opts.json) return print(JSON.stringify({ ...res, dry_run: opts.dryRun ?? false }));
  if (note) print(note);
  const count = (name: string): string => {
    const n = specs.find((s) => s.name === name)?.components.length ?? 0;
    return `${n} component${n === 1 ? '' : 's'}`;
  };
  // A dry run says what would happen, so no line of it reads as done.
  const would = opts.dryRun ? 'would be ' : '';
  for (const n of res.created) print(`service ${n} ${would}created (${count(n)})`);
  for (const u of res.updated) print(`service ${u.name} ${would}updated (${count(u.name)}): ${u.changes.join('; ')}`);
  for (const n of res.unchanged) print(`service ${n} unchanged`);
  for (const n of res.pruned) print(`service ${n} ${would}deleted (pruned)`);
}

export function applyCommand(): Command {
  return new Command('apply')
    .description('validate manifests and write them to the registry in one transaction')
    .requiredOption('-f, --file <path>', 'a manifest (.toml, .yaml, .yml, .json), a directory of them, or - for stdin (one service, or a JSON/YAML array of them); repeat it for several', (v: string, prev: string[] = []) => [...prev, v])
    .option('--prune', 'with a directory or stdin: delete every service not in the set (with --origin master: only services a master sent)')
    .option('--allow-empty', 'with --prune: accept an empty set (deletes every service it may prune)')
    .addOption(new Option('--format <format>', 'format of stdin').choices(['toml', 'yaml', 'json']))
    .addOption(new Option('--origin <origin>', 'who applies: recorded per service; a master\'s prune spares local services').choices(APPLY_ORIGINS).default('local'))
    .option('--dry-run', 'print what would change and write nothing (not even a new registry)')
    .option('--json', 'print JSON')
    .option('--wait', 'then wait until the running agent has every component of these services in sync (progress on stderr); exit 1 naming what is not')
    .option('--wait-timeout <duration>', 'with --wait: how long to wait (10s, 5m, 1h30m)', '2m')
    .action(async (opts: ApplyCliOpts, cmd: Command) => {
      const cfg = settings(cmd);
      const waitMs = parseDuration(opts.waitTimeout);
      if (waitMs === undefined || waitMs <= 0) throw new ValidationError('apply flags', [{ field: '--wait-timeout', rule: `${DURATION_RULE}, above 0, got '${opts.waitTimeout}'` }]);
      if (opts.wait && opts.dryRun) throw new ValidationError('apply flags', [{ field: '--wait', rule: 'cannot go with --dry-run: nothing is written, so nothing will change' }]);
      const notWhole = opts.file.filter((f) => f !== '-' && !statSync(f, { throwIfNoEntry: false })?.isDirectory());
      if (opts.prune && notWhole.length > 0) {
        throw new ValidationError('apply --prune', [{ field: '--file', rule: `must be a directory with --prune, or - for stdin (the whole desired state); ${notWhole.join(', ')} is not` }]);
      }
      const specs = readAll(opts.file, opts.format); // validated before the registry is opened
      checkBootFiles(specs, vmPaths(cfg).imagesDirs);
      checkHealthSsh(specs, vmPaths(cfg).imagesDirs);
      if (opts.prune && specs.length === 0 && !opts.allowEmpty) {
        // An empty directory is far more often a mistake (wrong path, failed sync) than intent.
        const where = opts.file.map((f) => (f === '-' ? 'stdin' : f)).join(', ');
        throw new ValidationError('apply --prune', [{ field: '--file', rule: `${where} holds no manifests; pass --allow-empty to delete every service it may prune` }]);
      }
      const applyOpts = { prune: opts.prune ?? false, origin: opts.origin };
      if (opts.dryRun) {
        const exists = statSync(cfg.db, { throwIfNoEntry: false }) !== undefined;
        const res = exists ? await withRegistry(cfg, (r) => r.desired.plan(specs, applyOpts), { readonlyAsIs: true }) : planAgainst([], specs, applyOpts);
        printApply(res, specs, opts, exists ? `dry run: nothing written to ${cfg.db}` : `dry run: ${cfg.db} does not exist; apply would create it`);
        return;
      }
      const res = await withRegistry(cfg, (r) => r.desired.apply(specs, applyOpts), { create: true });
      printApply(res, specs, opts);
      if (opts.wait) {
        const services = [...res.created, ...res.updated.map((u) => u.name), ...res.unchanged];
        const line = await waitApplied(cfg, { services, pruned: res.pruned }, waitMs, opts.waitTimeout);
        if (!opts.json) print(line);
      }
    });
}
