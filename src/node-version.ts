/**
 * Refuses an old Node.js with a clear error, before anything else of meshwork (and undici, whose
 * own failure on an old Node is cryptic) is evaluated. src/index.ts imports this module first,
 * and the build keeps it a chunk of its own that the entry imports first (tsup.config.ts); it
 * imports nothing but the errors module.
 */
import { NodeVersionError } from './errors.ts';

/** The oldest Node.js meshwork runs on: package.json `engines.node` (a test keeps them equal). */
export const NODE_MIN = { major: 22, minor: 19 } as const;

export function nodeVersionSupported(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > NODE_MIN.major || (major === NODE_MIN.major && minor >= NODE_MIN.minor);
}

if (!nodeVersionSupported(process.versions.node))
  throw new NodeVersionError(process.versions.node, `>=${NODE_MIN.major}.${NODE_MIN.minor}`);
