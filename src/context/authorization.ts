import type { AuthorizationPolicy, AuthorizationRule, PathCase } from './schema.ts';

export interface AuthzRequest {
  /** The caller's SPIFFE ID from its verified client certificate, if any. */
  principal: string | undefined;
  method: string;
  /** Normalized path, without the query string. */
  path: string;
}

export type AuthzDecision = { allowed: true } | { allowed: false; reason: string };

/** Istio string match: exact, `prefix*`, `*suffix`, or `*`. */
function matchOne(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  return pattern === value;
}

/** Principals compare without the `spiffe://` scheme, as Istio writes them. */
const bare = (p: string) => (p.startsWith('spiffe://') ? p.slice('spiffe://'.length) : p);

/** ASCII lowercase (normalized paths hold ASCII only; Unicode folding would add matches). */
function asciiLower(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s;
}

function anyMatch(patterns: readonly string[], value: string | undefined, norm = (s: string) => s): boolean {
  if (value === undefined) return false;
  const v = norm(value);
  return patterns.some((p) => matchOne(norm(p), v));
}

/**
 * How `paths` / `notPaths` compare, for one policy. FAIL_CLOSED folds case wherever that can only
 * refuse more: a DENY policy's `paths` and an ALLOW policy's `notPaths`.
 */
interface PathFold {
  paths: boolean;
  notPaths: boolean;
}

function pathFold(pathCase: PathCase, deny: boolean): PathFold {
  if (pathCase === 'SENSITIVE') return { paths: false, notPaths: false };
  if (pathCase === 'INSENSITIVE') return { paths: true, notPaths: true };
  return { paths: deny, notPaths: !deny };
}

const identity = (s: string) => s;

function ruleMatches(
  rule: AuthorizationRule,
  req: AuthzRequest,
  fold: PathFold,
  principal: (p: string) => string,
): boolean {
  const fromOk =
    !rule.from ||
    rule.from.some(({ source: s }) => {
      if (s.principals && !anyMatch(s.principals, req.principal, principal)) return false;
      if (s.notPrincipals && anyMatch(s.notPrincipals, req.principal, principal)) return false;
      return true;
    });
  if (!fromOk) return false;
  return (
    !rule.to ||
    rule.to.some(({ operation: o }) => {
      const method = req.method.toUpperCase();
      if (o.methods && !o.methods.some((m) => matchOne(m.toUpperCase(), method))) return false;
      if (o.notMethods?.some((m) => matchOne(m.toUpperCase(), method))) return false;
      if (o.paths && !anyMatch(o.paths, req.path, fold.paths ? asciiLower : identity)) return false;
      if (o.notPaths && anyMatch(o.notPaths, req.path, fold.notPaths ? asciiLower : identity)) return false;
      return true;
    })
  );
}

const policyName = (p: AuthorizationPolicy, i: number) => (p.name ? `"${p.name}"` : `#${i}`);

/**
 * Istio's AuthorizationPolicy evaluation: any matching DENY policy refuses; then, when at least
 * one ALLOW policy exists, the request must match one of them; with no ALLOW policy, it is allowed.
 * `pathCase` (default FAIL_CLOSED) says how path patterns compare; see docs/context.md.
 * `canonicalId` maps an alias trust domain to the own one (principals and patterns alike).
 */
export function authorize(
  policies: readonly AuthorizationPolicy[],
  req: AuthzRequest,
  pathCase: PathCase = 'FAIL_CLOSED',
  canonicalId?: (id: string) => string,
): AuthzDecision {
  // Trust domain aliases: an ID (or pattern) in an alias domain is the own domain's, on both
  // sides, as Istio expands a policy's principals to every alias.
  const principal = canonicalId === undefined ? bare : (p: string) => bare(canonicalId(p));
  const who = `principal ${req.principal ?? '(none: no verified client certificate)'}, ${req.method} ${req.path}`;
  const denyFold = pathFold(pathCase, true);
  const allowFold = pathFold(pathCase, false);
  let hasAllow = false;
  for (const [i, p] of policies.entries()) {
    if (p.action === 'DENY') {
      if (p.rules.some((r) => ruleMatches(r, req, denyFold, principal))) {
        return { allowed: false, reason: `denied by DENY policy ${policyName(p, i)} (${who})` };
      }
    } else hasAllow = true;
  }
  if (!hasAllow) return { allowed: true };
  for (const p of policies) {
    if (p.action === 'ALLOW' && p.rules.some((r) => ruleMatches(r, req, allowFold, principal)))
      return { allowed: true };
  }
  return { allowed: false, reason: `no ALLOW policy matches (${who})` };
}
