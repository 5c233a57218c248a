// One way to say "this must fail, with this error": for sync functions and promises alike. It
// checks the error's class and that its message names what a person needs (field, rule, fix),
// and returns the error for further checks.
import { strict as assert } from 'node:assert';

export interface ExpectedError<E extends Error> {
  /** The error's class (default: any Error). */
  type?: abstract new (...args: never[]) => E;
  /** Every pattern must match the message. */
  message?: RegExp | RegExp[];
}

function check<E extends Error>(err: unknown, want: ExpectedError<E>): E {
  const type = want.type ?? Error;
  assert.ok(err instanceof type, `expected a ${type.name}, got ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)}`);
  for (const re of [want.message ?? []].flat()) assert.match((err as Error).message, re);
  return err as E;
}

/** `fn` throws (or the promise rejects) with an error as described; returns it. */
export function expectError<E extends Error = Error>(fn: () => unknown, want?: ExpectedError<E>): E;
export function expectError<E extends Error = Error>(p: Promise<unknown>, want?: ExpectedError<E>): Promise<E>;
export function expectError<E extends Error>(what: (() => unknown) | Promise<unknown>, want: ExpectedError<E> = {}): E | Promise<E> {
  if (what instanceof Promise) {
    return what.then(
      () => assert.fail('expected a rejection, the promise resolved'),
      (err: unknown) => check(err, want),
    );
  }
  try {
    what();
  } catch (err) {
    return check(err, want);
  }
  return assert.fail('expected an error, nothing was thrown');
}
