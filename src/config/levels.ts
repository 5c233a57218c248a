/** The log levels, apart from the settings schema: the CLI's `--log-level` lists them without loading zod. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
