/**
 * Loads and validates the mesh config: MESHWORK_CONFIG (a YAML or JSON file) first, then the
 * config given in code merged over it. Validation is complete and synchronous; every problem
 * becomes one line of a MeshworkConfigError, naming the field path and the bad value.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { type ConfigIssue, MeshworkConfigError } from '../errors.ts';
import { redactUrlsIn } from '../telemetry/url.ts';
import { PROTO_KEY_MESSAGE, protoKeyPaths } from './reserved.ts';
import { type MeshConfig, meshConfigSchema } from './schema.ts';

export function loadConfig(config: unknown, env: NodeJS.ProcessEnv = process.env): MeshConfig {
  let merged: unknown = config ?? {};
  const file = env.MESHWORK_CONFIG;
  if (file) merged = deepMerge(readConfigFile(file), merged);
  return validateConfig(merged);
}

export function validateConfig(input: unknown): MeshConfig {
  assertConfigObject(input);
  // Refused before the schema sees them: an object assigned a "__proto__" key loses the entry.
  const reserved = protoKeyPaths(input);
  if (reserved.length > 0) {
    throw new MeshworkConfigError(reserved.map((p) => ({ path: formatPath(p), message: PROTO_KEY_MESSAGE })));
  }
  const result = meshConfigSchema.safeParse(input, { reportInput: true });
  if (!result.success) throw new MeshworkConfigError(formatIssues(result.error.issues));
  return result.data;
}

/** The config as a whole must be a mapping (createMesh(null), a number or an array are refused). */
export function assertConfigObject(input: unknown): void {
  if (typeof input === 'object' && input !== null && !Array.isArray(input)) return;
  throw new MeshworkConfigError([
    {
      path: 'config',
      message: `${formatValue(input)} is not an object (expected a mapping of config fields)`,
    },
  ]);
}

/** Reads and parses a config file; problems are a MeshworkConfigError at `label` (the env var or field). */
export function readConfigFile(path: string, label = 'MESHWORK_CONFIG'): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new MeshworkConfigError([
      {
        path: label,
        message: `${JSON.stringify(path)} cannot be read (${(err as Error).message})`,
      },
    ]);
  }
  return parseConfigText(text, path, label);
}

/** Parses a YAML or JSON config document (empty = {}); the top level must be a mapping. */
export function parseConfigText(text: string, where: string, label: string): unknown {
  try {
    // YAML is a superset of JSON, so one parser reads both.
    const doc = parseYaml(text) as unknown;
    if (doc !== null && doc !== undefined && !isPlainObject(doc)) {
      throw new Error('the top level is not a mapping');
    }
    return doc ?? {};
  } catch (err) {
    // The parser's first line names the problem, line and column; the lines after it quote the
    // file, which may hold a secret (a token, an HMAC key): the message goes to logs and the snapshot.
    const first = (err as Error).message.split('\n')[0]?.replace(/:$/, '');
    throw new MeshworkConfigError([
      { path: label, message: `${JSON.stringify(where)} is not valid YAML/JSON (${first})` },
    ]);
  }
}

/**
 * Objects merge key by key (code wins); arrays and scalars from `over` replace. Keys are own
 * properties only, and are defined rather than assigned, so a "__proto__" key stays a key (and is
 * then refused by validateConfig) instead of replacing the merged object's prototype.
 */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(base)) define(out, k, v);
  for (const [k, v] of Object.entries(over)) define(out, k, Object.hasOwn(out, k) ? deepMerge(out[k], v) : v);
  return out;
}

function define(out: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** `services.travels.discovery.static[0]`; keys that are not identifiers are quoted. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_$][\w$-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

/** Fields whose values a config error never shows (secrets, keys, tokens). */
const SECRET_FIELD = /secret|passw|token|privatekey|^key$/i;
const NOT_SHOWN = '(value not shown)';

/**
 * A bad value, short, for a config error: values of secret-like fields are not shown, and URLs
 * quoted in it have their userinfo redacted.
 */
export function formatValue(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'function') return 'a function';
  try {
    const s = redactUrlsIn(
      JSON.stringify(v, (k, x) => (k !== '' && SECRET_FIELD.test(k) && x !== undefined ? NOT_SHOWN : x)),
    );
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return redactUrlsIn(String(v));
  }
}

/** formatValue, unless the field is a secret or its schema asks (`params: { hideInput: true }`). */
function shown(v: unknown, path: readonly PropertyKey[], issue?: Issue): string {
  const field = path.findLast((p) => typeof p === 'string');
  if (typeof field === 'string' && SECRET_FIELD.test(field)) return NOT_SHOWN;
  if ((issue as { params?: { hideInput?: unknown } } | undefined)?.params?.hideInput === true)
    return NOT_SHOWN;
  return formatValue(v);
}

type Issue = z.core.$ZodIssue;

export function formatIssues(issues: readonly Issue[], prefix: readonly PropertyKey[] = []): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    const input = (issue as { input?: unknown }).input;
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) {
          const value = isPlainObject(input) && Object.hasOwn(input, key) ? input[key] : undefined;
          out.push({
            path: formatPath([...path, key]),
            message: `unknown field (value ${shown(value, [...path, key])})`,
          });
        }
        break;
      case 'invalid_value':
        out.push({
          path: formatPath(path),
          message: `${shown(input, path)} is not one of ${issue.values.map((v) => String(v)).join(', ')}`,
        });
        break;
      case 'invalid_type':
        out.push({
          path: formatPath(path),
          message:
            input === undefined
              ? `is required (expected ${issue.expected})`
              : `${shown(input, path)} is not a valid ${issue.expected}`,
        });
        break;
      case 'too_small':
      case 'too_big': {
        const op = issue.code === 'too_small' ? (issue.inclusive ? '>=' : '>') : issue.inclusive ? '<=' : '<';
        const what = issue.origin === 'string' || issue.origin === 'array' ? ' in length' : '';
        const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
        out.push({
          path: formatPath(path),
          message: `${shown(input, path)} must be ${op} ${String(bound)}${what}`,
        });
        break;
      }
      case 'invalid_union': {
        // Report the branch that got furthest: the one whose problems are not a type mismatch at the root.
        const branches = issue.errors.filter(
          (b) => !b.some((i) => i.code === 'invalid_type' && i.path.length === 0),
        );
        const best = branches.length > 0 ? branches[0] : undefined;
        if (best && best.length > 0) out.push(...formatIssues(best, path));
        else out.push({ path: formatPath(path), message: `${shown(input, path)} has the wrong type` });
        break;
      }
      case 'invalid_key':
        out.push({
          path: formatPath(path),
          message: `key ${shown(input, path)} ${issue.issues[0]?.message ?? 'is not valid'}`,
        });
        break;
      default:
        out.push({
          path: formatPath(path),
          message: input === undefined ? issue.message : `${shown(input, path, issue)} ${issue.message}`,
        });
    }
  }
  return out;
}
