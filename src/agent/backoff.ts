/** Exponential backoff, pure. failures = consecutive failures so far (>= 1 when called). */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

export function backoffDelayMs(failures: number, p: BackoffPolicy): number {
  if (failures <= 0) return 0;
  // 2^(n-1) overflows to Infinity for huge n: cap the exponent first.
  const exp = Math.min(failures - 1, 40);
  return Math.min(p.baseMs * 2 ** exp, p.maxMs);
}

export function nextAttemptAt(now: Date, failures: number, p: BackoffPolicy): Date {
  return new Date(now.getTime() + backoffDelayMs(failures, p));
}
