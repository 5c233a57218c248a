/**
 * Where the running agent's local API listens: `<home>/agent.sock`, home being the registry's
 * directory. Kept apart (and light) so the CLI finds it without loading the server.
 */
import { join } from 'node:path';
import { vmPaths, type AgentConfig } from '../config/config.js';

export const SOCKET_NAME = 'agent.sock';

/** The longest path a unix socket may have (sun_path is 108 bytes with its NUL). */
export const MAX_SOCKET_PATH = 107;

export const apiSocketPath = (cfg: AgentConfig): string => join(vmPaths(cfg).home, SOCKET_NAME);
