/**
 * Which build this code is: a fresh id per `npm run build` (scripts/bundle.mjs defines
 * __AGENT_BUILD__ in the bundle), undefined when run from source (tsx, dist/ by tsc). The local
 * API sends it; a CLI of the very same build trusts the agent's documents without checking them
 * against their schemas (the same code made them), any other checks them.
 */
declare const __AGENT_BUILD__: string | undefined;

export const BUILD_ID: string | undefined = typeof __AGENT_BUILD__ === 'string' ? __AGENT_BUILD__ : undefined;
