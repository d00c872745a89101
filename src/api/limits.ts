// Query limits, one list of validation rules for HTTP (Apollo) and WebSocket (graphql-ws):
//   depth    ≤ 10 levels of selection (fragments followed, cycles refused by graphql-js already)
//   cost     ≤ 5,000: 1 per field; list fields multiply their selection by `first` or 20; generate/edit/
//            retryNode cost 200 (a GPU job), so one request queues at most 25 jobs
//   aliases  ≤ 30 per operation (aliases multiply work without adding depth)
//   document ≤ 20,000 characters (checked before parsing; see MAX_QUERY_CHARS)
// Introspection is bounded by graphql-js's MaxIntrospectionDepthRule; depth and cost skip only the
// `__schema` / `__type` FIELDS (never anything by operation or fragment name — graphql-armor's bypass).

import {
  ASTVisitor,
  FieldNode,
  FragmentDefinitionNode,
  GraphQLError,
  InlineFragmentNode,
  Kind,
  MaxIntrospectionDepthRule,
  OperationDefinitionNode,
  SelectionSetNode,
  specifiedRules,
  ValidationContext,
  ValidationRule,
} from 'graphql';

export const LIMITS = { maxDepth: 10, maxCost: 5000, maxAliases: 30, defaultListSize: 20, jobCost: 200 };
export const MAX_QUERY_CHARS = 20_000;
const JOB_FIELDS = new Set(['generate', 'edit', 'retryNode']);
const LIST_FIELDS = new Set(['children', 'nodes', 'members', 'edges', 'promptDiff', 'deletedNodeIds']);

function limitError(message: string, limit: string, node?: FieldNode | OperationDefinitionNode): GraphQLError {
  return new GraphQLError(message, { nodes: node ? [node] : undefined, extensions: { code: 'BAD_USER_INPUT', limit } });
}

type Frags = Record<string, FragmentDefinitionNode>;

function selectionsOf(set: SelectionSetNode | undefined, frags: Frags, seen: Set<string>): FieldNode[] {
  const out: FieldNode[] = [];
  for (const s of set?.selections ?? []) {
    if (s.kind === Kind.FIELD) out.push(s);
    else if (s.kind === Kind.INLINE_FRAGMENT) out.push(...selectionsOf((s as InlineFragmentNode).selectionSet, frags, seen));
    else if (s.kind === Kind.FRAGMENT_SPREAD) {
      const name = s.name.value;
      if (seen.has(name) || !frags[name]) continue; // a cycle is reported by NoFragmentCyclesRule
      out.push(...selectionsOf(frags[name].selectionSet, frags, new Set([...seen, name])));
    }
  }
  return out;
}

function isIntrospection(f: FieldNode): boolean {
  return f.name.value === '__schema' || f.name.value === '__type';
}

function depthOf(set: SelectionSetNode | undefined, frags: Frags): number {
  let max = 0;
  for (const f of selectionsOf(set, frags, new Set())) {
    if (isIntrospection(f)) continue;
    max = Math.max(max, 1 + (f.selectionSet ? depthOf(f.selectionSet, frags) : 0));
  }
  return max;
}

function intArg(f: FieldNode, name: string, variables: Record<string, unknown> | undefined): number | null {
  const a = f.arguments?.find((x) => x.name.value === name);
  if (!a) return null;
  if (a.value.kind === Kind.INT) return Number(a.value.value);
  if (a.value.kind === Kind.VARIABLE) {
    const v = variables?.[a.value.name.value];
    return typeof v === 'number' ? v : null;
  }
  return null;
}

function costOf(set: SelectionSetNode | undefined, frags: Frags, variables: Record<string, unknown> | undefined, parentFirst: number | null): number {
  let total = 0;
  for (const f of selectionsOf(set, frags, new Set())) {
    if (isIntrospection(f)) continue;
    const name = f.name.value;
    const own = JOB_FIELDS.has(name) ? LIMITS.jobCost : 1;
    const first = intArg(f, 'first', variables);
    const multiplier = LIST_FIELDS.has(name) ? (name === 'edges' && parentFirst !== null ? parentFirst : LIMITS.defaultListSize) : 1;
    total += own + multiplier * (f.selectionSet ? costOf(f.selectionSet, frags, variables, first ?? (name === 'trees' ? LIMITS.defaultListSize : null)) : 0);
  }
  return total;
}

/** Builds the rules; `variables` sharpens the cost estimate where `first` comes from a variable. */
export function limitRules(variables?: Record<string, unknown>): ValidationRule[] {
  const rule: ValidationRule = (ctx: ValidationContext): ASTVisitor => {
    const frags: Frags = {};
    for (const d of ctx.getDocument().definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) frags[d.name.value] = d;
    return {
      OperationDefinition(op: OperationDefinitionNode) {
        const depth = depthOf(op.selectionSet, frags);
        if (depth > LIMITS.maxDepth) ctx.reportError(limitError(`query depth ${depth} exceeds the limit of ${LIMITS.maxDepth}`, 'depth', op));
        const cost = costOf(op.selectionSet, frags, variables, null);
        if (cost > LIMITS.maxCost) ctx.reportError(limitError(`query cost ${cost} exceeds the limit of ${LIMITS.maxCost}`, 'cost', op));
        let aliases = 0;
        const countAliases = (set: SelectionSetNode | undefined, seen: Set<string>) => {
          for (const s of set?.selections ?? []) {
            if (s.kind === Kind.FIELD) {
              if (s.alias) aliases++;
              countAliases(s.selectionSet, seen);
            } else if (s.kind === Kind.INLINE_FRAGMENT) countAliases(s.selectionSet, seen);
            else if (!seen.has(s.name.value) && frags[s.name.value]) countAliases(frags[s.name.value].selectionSet, new Set([...seen, s.name.value]));
          }
        };
        countAliases(op.selectionSet, new Set());
        if (aliases > LIMITS.maxAliases) ctx.reportError(limitError(`${aliases} aliases exceed the limit of ${LIMITS.maxAliases}`, 'aliases', op));
      },
    };
  };
  return [MaxIntrospectionDepthRule, rule];
}

/** graphql-js's standard rules plus ours: what graphql-ws validates with (Apollo adds the standard ones itself). */
export function allValidationRules(variables?: Record<string, unknown>): ValidationRule[] {
  return [...specifiedRules, ...limitRules(variables)];
}
