/**
 * Durations, times and counts as an operator types them on the command line (`--since 5m`,
 * `--since 2026-11-29T10:00:00Z`, `--tail 20`, `--wait-timeout 90s`). Pure: the clock is an
 * argument. Each parser returns undefined for text it does not accept; the caller names the flag.
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `500ms`, `10s`, `5m`, `2h`, `1d`, or Go-style compounds like `1h30m`, as milliseconds. A unit is
 * required: a bare number is ambiguous (podman's --since reads one as a Unix timestamp).
 */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (!/^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/.test(t)) return undefined;
  let ms = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return Number.isFinite(ms) ? ms : undefined;
}

/** An RFC 3339 time with its offset (`2026-11-29T10:00:00Z`, `...T10:00:00.5+01:00`), as epoch ms. */
export function parseRfc3339(text: string): number | undefined {
  const t = text.trim();
  if (!/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/.test(t)) return undefined;
  const ms = Date.parse(t.replace(' ', 'T'));
  return Number.isNaN(ms) ? undefined : ms;
}

/** `--since`: a duration back from `now`, or an RFC 3339 time. Returns the moment, epoch ms. */
export function parseSince(text: string, now: number): number | undefined {
  const d = parseDuration(text);
  if (d !== undefined) return now - d;
  return parseRfc3339(text);
}

/** A whole number ≥ 0 (`--tail 0` is valid: no old lines, only what follows). */
export function parseCount(text: string): number | undefined {
  if (!/^\d+$/.test(text.trim())) return undefined;
  const n = Number(text.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The rules, worded once for every flag's error message. */
export const DURATION_RULE = 'must be a duration with a unit, like 500ms, 10s, 5m, 2h or 1h30m';
export const SINCE_RULE = `${DURATION_RULE} (back from now), or an RFC 3339 time like 2026-11-29T10:00:00Z`;
export const COUNT_RULE = 'must be a whole number ≥ 0';
