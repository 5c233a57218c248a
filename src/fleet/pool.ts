/**
 * Runs one task per node with at most `parallel` under way; a task that fails fails alone.
 * Results keep the nodes' order.
 */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: Error };

export async function eachNode<N, T>(items: readonly N[], parallel: number, task: (item: N) => Promise<T>): Promise<Settled<T>[]> {
  const results: Settled<T>[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      try {
        results[i] = { ok: true, value: await task(items[i]!) };
      } catch (err) {
        results[i] = { ok: false, error: err instanceof Error ? err : new Error(String(err)) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, items.length)) }, worker));
  return results;
}
