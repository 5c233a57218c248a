// The short, seeded run of the chaos suite's write-storm scenario (chaos/write-storm.ts): part of the normal
// test suite; it fails when any invariant of the scenario is violated. The long run is `npm run chaos`.
import { strict as assert } from 'node:assert';
import { it } from 'node:test';
import { Janitor } from '../../chaos/lib/janitor.js';
import { runWriteStorm } from '../../chaos/write-storm.js';
import { SHORT_RUN } from './short-run.js';

it('chaos write-storm: every invariant holds (short seeded run)', async (t) => {
  const janitor = new Janitor();
  t.after(() => janitor.cleanup());
  const tally = await runWriteStorm(janitor, SHORT_RUN, (m) => t.diagnostic(m));
  t.diagnostic(tally.format());
  assert.equal(tally.total(), 0, tally.format(10));
});
