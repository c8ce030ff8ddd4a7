/**
 * AuthorizationPolicy (security.istio.io) into meshwork's `authorization` (enforced by
 * mesh.inbound()). Non-strict mode fails closed: what cannot be carried makes a policy refuse
 * more, never allow more.
 */
import { OBJECT_MEMBERS } from '../config/reserved.ts';
import {
  builtinKey,
  type Cx,
  type Handler,
  type IstioProblem,
  isObject,
  list,
  obj,
  problem,
  SKIP,
  scalar,
  show,
} from './walk.ts';

const source = obj(
  { principals: list(scalar), notPrincipals: list(scalar) },
  {
    namespaces: 'namespaces is not supported: list the callers as principals (cluster.local/ns/<ns>/sa/*)',
    notNamespaces: 'notNamespaces is not supported: use notPrincipals',
    requestPrincipals: 'requestPrincipals (JWT) is not supported',
    notRequestPrincipals: 'notRequestPrincipals (JWT) is not supported',
    ipBlocks: 'ipBlocks is not supported',
    notIpBlocks: 'notIpBlocks is not supported',
    remoteIpBlocks: 'remoteIpBlocks is not supported',
    notRemoteIpBlocks: 'notRemoteIpBlocks is not supported',
  },
);

const operation = obj(
  { paths: list(scalar), notPaths: list(scalar), methods: list(scalar), notMethods: list(scalar) },
  {
    hosts: 'hosts is not supported (a meshwork inbound() serves one service)',
    notHosts: 'notHosts is not supported',
    ports: 'ports is not supported',
    notPorts: 'notPorts is not supported',
  },
);

const authorizationRule = obj(
  { from: list(obj({ source })), to: list(obj({ operation })) },
  { when: 'when conditions are not supported' },
);

/** An AuthorizationPolicy action meshwork enforces (ALLOW, DENY); the others are reported. */
const authorizationAction: Handler = (v, path, cx) => {
  if (v === 'ALLOW' || v === 'DENY') return v;
  problem(
    cx,
    path,
    v === 'CUSTOM'
      ? 'CUSTOM (external authorization) is not supported; non-strict: enforced as a DENY of its rules'
      : v === 'AUDIT'
        ? 'AUDIT is not supported (it decides nothing); non-strict: the policy is left out'
        : `${show(v)} is not one of ALLOW, DENY; non-strict: enforced as a DENY of its rules`,
  );
  return SKIP;
};

const POLICY_FIELDS = new Set(['action', 'rules', 'selector']);
const POLICY_UNSUPPORTED: Record<string, string> = {
  targetRef: 'targetRef is not supported',
  targetRefs: 'targetRefs is not supported',
  provider: 'provider (CUSTOM action) is not supported',
};

/**
 * One AuthorizationPolicy spec, rule by rule, failing closed when something cannot be carried
 * (non-strict mode): an ALLOW rule with an unsupported part is left out (it allows less), a
 * DENY rule with one matches every request (it denies more), a CUSTOM policy becomes a DENY of
 * its rules, an AUDIT policy is left out (it decides nothing). Returns undefined to leave the
 * policy out.
 */
export function authorizationPolicy(
  spec: Record<string, unknown>,
  name: string,
  cx: Cx,
): Record<string, unknown> | undefined {
  for (const [k, v] of Object.entries(spec)) {
    if (v === null || v === undefined || POLICY_FIELDS.has(k)) continue;
    if (OBJECT_MEMBERS.has(k)) builtinKey(cx, `spec.${k}`);
    else {
      const reason = Object.hasOwn(POLICY_UNSUPPORTED, k) ? POLICY_UNSUPPORTED[k] : 'is not supported';
      problem(cx, `spec.${k}`, `${reason} (value ${show(v)})`);
    }
  }
  let action: 'ALLOW' | 'DENY' = 'ALLOW';
  if (spec.action !== undefined && spec.action !== null) {
    const a = authorizationAction(spec.action, 'spec.action', cx);
    if (a === SKIP && spec.action === 'AUDIT') return undefined;
    action = a === SKIP ? 'DENY' : (a as 'ALLOW' | 'DENY');
  }
  const policy: Record<string, unknown> = { name, action };
  if (spec.rules === undefined || spec.rules === null) return policy;
  if (!Array.isArray(spec.rules)) {
    problem(cx, 'spec.rules', `expected a list, got ${show(spec.rules)}`);
    policy.rules = action === 'DENY' ? [{}] : [];
    return policy;
  }
  const rules: unknown[] = [];
  spec.rules.forEach((rule, i) => {
    const before = cx.problems.length;
    const r = authorizationRule(rule, `spec.rules[${i}]`, cx);
    if (cx.problems.length === before && r !== SKIP) rules.push(r);
    else {
      const consequence =
        action === 'ALLOW'
          ? 'non-strict: this ALLOW rule is left out'
          : 'non-strict: this DENY rule matches every request';
      for (let j = before; j < cx.problems.length; j++) {
        const p = cx.problems[j] as IstioProblem;
        cx.problems[j] = { path: p.path, message: `${p.message}; ${consequence}` };
      }
      if (action === 'DENY') rules.push({});
    }
  });
  policy.rules = rules;
  return policy;
}

/**
 * Does the policy apply to this workload? Yes with no selector (namespace-wide) or a selector
 * whose matchLabels all match `labels`; no when they do not; unknown (reported) without
 * `labels` or with a selector other than matchLabels.
 */
export function selects(
  selector: unknown,
  labels: Record<string, string> | undefined,
  cx: Cx,
): 'yes' | 'no' | 'unknown' {
  if (selector === undefined || selector === null) return 'yes';
  const match = isObject(selector) ? selector.matchLabels : undefined;
  if (!isObject(selector) || Object.keys(selector).some((k) => k !== 'matchLabels') || !isObject(match)) {
    problem(
      cx,
      'spec.selector',
      `only matchLabels is supported (value ${show(selector)})${UNKNOWN_SELECTOR}`,
    );
    return 'unknown';
  }
  if (labels === undefined) {
    problem(
      cx,
      'spec.selector',
      `selects workloads ${show(match)}: pass fromIstio(yaml, { workloadLabels }) with this service's labels${UNKNOWN_SELECTOR}`,
    );
    return 'unknown';
  }
  return Object.entries(match).every(([k, v]) => Object.hasOwn(labels, k) && labels[k] === String(v))
    ? 'yes'
    : 'no';
}

/**
 * Non-strict mode, when it is unknown whether a policy applies here: a DENY is kept (it can only
 * refuse more), an ALLOW is kept with no rules (it allows nothing, but its presence means requests
 * no other ALLOW policy matches are refused): both fail closed.
 */
const UNKNOWN_SELECTOR = '; non-strict: a DENY policy is kept, an ALLOW policy is kept allowing nothing';
