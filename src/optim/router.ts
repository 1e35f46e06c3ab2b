/**
 * The router: splits a model's parameters into groups, one per training method or optimizer.
 *
 * Each rule names a target and says which parameters it claims. Every parameter must be claimed by
 * exactly one target (or fall to `otherwise`): a parameter claimed twice, or by nobody, is an error that
 * names it, because silently training a parameter twice, or not at all, is the kind of bug that only shows
 * up as a worse accuracy. (Larq's CaseOptimizer makes the same choice.)
 * The float-model learner (methods/float-model.ts) routes binary weights to its method and real ones to its
 * optimizer through it.
 *
 *     const groups = routeParameters(model.parameters(), [
 *       { target: 'method', match: { kind: 'binary' } },
 *       { target: 'adam', match: { kind: 'real' } },
 *     ]);
 *     // groups.method: the binary weights; groups.adam: batch norm, scales, real layers
 */
import { RoutingError } from '../errors.js';
import type { Parameter } from '../nn/layer.js';

/**
 * Which parameters a rule claims. An object matches when every field it sets matches:
 * `kind` and `decay` compare equal; `name` is a RegExp, or a glob where `*` matches any run of characters
 * (dots included) and `?` one character, e.g. `"*.bn*.*"` or `"fc1.*"`. A function decides by itself.
 */
export type ParameterMatcher =
  | {
      readonly kind?: Parameter['kind'];
      readonly name?: string | RegExp;
      readonly decay?: boolean;
    }
  | ((p: Parameter) => boolean);

export interface RouteRule<T extends string> {
  readonly target: T;
  readonly match: ParameterMatcher;
}

/** The parameters of each target, in model order; every target of a rule has a (possibly empty) entry. */
export type ParameterGroups<T extends string> = { readonly [K in T]: Parameter[] };

function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

function compile(matcher: ParameterMatcher): (p: Parameter) => boolean {
  if (typeof matcher === 'function') return matcher;
  const { kind, decay } = matcher;
  const name = typeof matcher.name === 'string' ? globToRegExp(matcher.name) : matcher.name;
  return (p) =>
    (kind === undefined || p.kind === kind) &&
    (decay === undefined || p.decay === decay) &&
    // search() ignores lastIndex, so a user's /g or /y RegExp cannot make matching stateful.
    (name === undefined || p.name.search(name) !== -1);
}

/**
 * Partitions `params` by `rules`; parameters no rule claims go to `options.otherwise` when given.
 * Throws RoutingError naming the parameter when rules with different targets claim it, when none does, or when two
 * parameters share a name.
 */
export function routeParameters<T extends string>(
  params: readonly Parameter[],
  rules: readonly RouteRule<T>[],
  options: { readonly otherwise?: T } = {},
): ParameterGroups<T> {
  const groups = {} as { [K in T]: Parameter[] };
  for (const r of rules) groups[r.target] = [];
  if (options.otherwise !== undefined) groups[options.otherwise] = [];

  const tests = rules.map((r) => ({ target: r.target, test: compile(r.match) }));
  const seen = new Set<string>();
  for (const p of params) {
    if (seen.has(p.name)) throw new RoutingError(p.name, `parameter '${p.name}' appears twice in the model`);
    seen.add(p.name);

    const claimedBy: T[] = [];
    // Two rules with the same target may both match: the parameter still lands in one group.
    for (const t of tests) if (t.test(p) && !claimedBy.includes(t.target)) claimedBy.push(t.target);

    let target: T;
    if (claimedBy.length === 1) target = claimedBy[0];
    else if (claimedBy.length > 1) {
      throw new RoutingError(
        p.name,
        `parameter '${p.name}' is claimed by rules with different targets (${claimedBy.join(', ')}); ` +
          'make the rules disjoint',
      );
    } else if (options.otherwise !== undefined) target = options.otherwise;
    else {
      throw new RoutingError(
        p.name,
        `parameter '${p.name}' (kind ${p.kind}) is claimed by no rule and there is no 'otherwise' target`,
      );
    }
    groups[target].push(p);
  }
  return groups;
}
