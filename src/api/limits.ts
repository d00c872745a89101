// Query limits: one policy for HTTP (Apollo) and WebSocket (graphql-ws). Both transports
//   1. refuse documents over MAX_QUERY_CHARS characters before parsing,
//   2. parse with `maxTokens` (LIMITS.maxTokens),
//   3. validate with graphql-js's specified rules plus `validationRules()` (introspection depth, query
//      depth, aliases, and no introspection at all where it is off),
//   4. check the cost of the chosen operation WITH its variables (`checkCost`), after coercion: Apollo
//      caches validation per document text, so a variable-dependent limit cannot be a validation rule.
//
//   depth    ≤ 10 levels of selection (fragments followed)
//   cost     ≤ 5,000: 1 per field; a list field multiplies its selection by its `first` argument (a
//            literal or a variable), else 20; a connection's `edges` by the connection's `first`;
//            generate/edit/retryNode cost 200 (a GPU job), so one request queues at most 25 jobs
//   aliases  ≤ 30 per operation, counted through fragments (aliases multiply work without adding depth)
//   tokens   ≤ 2,000 (parse aborts past it), document ≤ 20,000 characters
//
// Every measure walks each fragment once (memoized per fragment, cycles cut), so validation costs time
// linear in the document even when spreads nest: a fragment spread 4 times in each of 9 nested fragments
// expands to 4⁹ fields but is measured in 10 steps. Sums saturate instead of overflowing.
// Depth and cost skip only the `__schema` / `__type` FIELDS, which MaxIntrospectionDepthRule bounds
// (never anything by operation or fragment name, the bypass of graphql-armor's ignoreIntrospection).

import {
  ASTVisitor,
  DocumentNode,
  FieldNode,
  FragmentDefinitionNode,
  getNamedType,
  getNullableType,
  GraphQLError,
  GraphQLNamedType,
  GraphQLSchema,
  isListType,
  isObjectType,
  isInterfaceType,
  Kind,
  MaxIntrospectionDepthRule,
  NoSchemaIntrospectionCustomRule,
  OperationDefinitionNode,
  SelectionSetNode,
  ValidationContext,
  ValidationRule,
} from 'graphql';

export const LIMITS = { maxDepth: 10, maxCost: 5000, maxAliases: 30, maxTokens: 2000, defaultListSize: 20, jobCost: 200 };
export const MAX_QUERY_CHARS = 20_000;
/** Mutations that queue a GPU job. */
const JOB_FIELDS = new Set(['generate', 'edit', 'retryNode']);
/** Larger than any limit and exact in a double: sums stop here. */
const SATURATED = Number.MAX_SAFE_INTEGER;

/** Parse options for both transports (Apollo `parseOptions`, graphql-ws `parse`). */
export const PARSE_OPTIONS = { maxTokens: LIMITS.maxTokens, noLocation: false } as const;

function limitError(message: string, limit: string, node?: FieldNode | OperationDefinitionNode): GraphQLError {
  // http.status: Apollo answers a request refused in a plugin with 500 unless told otherwise.
  return new GraphQLError(message, { nodes: node ? [node] : undefined, extensions: { code: 'BAD_USER_INPUT', limit, http: { status: 400 } } });
}

const add = (a: number, b: number) => Math.min(SATURATED, a + b);
const mul = (a: number, b: number) => Math.min(SATURATED, a * b);

function isIntrospection(f: FieldNode): boolean {
  return f.name.value === '__schema' || f.name.value === '__type';
}

interface Measure {
  depth: number;
  cost: number;
  aliases: number;
}

/**
 * Depth, cost and aliases of one selection set, each fragment measured once per context. `variables`
 * undefined: the cost is not wanted (validation time, where variables are unknown); `first: $n` then
 * counts as the default list size.
 */
class Measurer {
  private readonly frags = new Map<string, FragmentDefinitionNode>();
  private readonly memo = new Map<string, Measure>();
  private readonly inProgress = new Set<string>();

  constructor(private readonly schema: GraphQLSchema, document: DocumentNode, private readonly variables: Record<string, unknown> | undefined) {
    for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) this.frags.set(d.name.value, d);
  }

  operation(op: OperationDefinitionNode): Measure {
    const root = op.operation === 'query' ? this.schema.getQueryType() : op.operation === 'mutation' ? this.schema.getMutationType() : this.schema.getSubscriptionType();
    return this.selectionSet(op.selectionSet, root ?? undefined, null);
  }

  /** `connectionFirst`: the page size of the connection this set belongs to (for its `edges`). */
  private selectionSet(set: SelectionSetNode | undefined, parent: GraphQLNamedType | undefined, connectionFirst: number | null): Measure {
    const m: Measure = { depth: 0, cost: 0, aliases: 0 };
    for (const s of set?.selections ?? []) {
      let child: Measure;
      if (s.kind === Kind.FIELD) {
        child = this.field(s, parent, connectionFirst);
      } else if (s.kind === Kind.INLINE_FRAGMENT) {
        const type = s.typeCondition ? this.schema.getType(s.typeCondition.name.value) : parent;
        child = this.selectionSet(s.selectionSet, type ?? undefined, connectionFirst);
      } else {
        child = this.spread(s.name.value, connectionFirst);
      }
      m.depth = Math.max(m.depth, child.depth);
      m.cost = add(m.cost, child.cost);
      m.aliases = add(m.aliases, child.aliases);
    }
    return m;
  }

  private spread(name: string, connectionFirst: number | null): Measure {
    const frag = this.frags.get(name);
    const key = `${name}|${connectionFirst}`;
    // A cycle is reported by NoFragmentCyclesRule; here it just stops.
    if (!frag || this.inProgress.has(key)) return { depth: 0, cost: 0, aliases: 0 };
    const hit = this.memo.get(key);
    if (hit) return hit;
    this.inProgress.add(key);
    const m = this.selectionSet(frag.selectionSet, this.schema.getType(frag.typeCondition.name.value) ?? undefined, connectionFirst);
    this.inProgress.delete(key);
    this.memo.set(key, m);
    return m;
  }

  private field(f: FieldNode, parent: GraphQLNamedType | undefined, connectionFirst: number | null): Measure {
    const aliases = f.alias ? 1 : 0;
    if (isIntrospection(f)) return { depth: 0, cost: 0, aliases };
    const def = parent && (isObjectType(parent) || isInterfaceType(parent)) ? parent.getFields()[f.name.value] : undefined;
    const type = def ? getNamedType(def.type) : undefined;
    const isList = def ? isListType(getNullableType(def.type)) : false;
    // Absent, `first` costs what the field serves by default (its schema default, e.g. Tree.nodes' 20).
    const schemaFirst = def?.args.find((a) => a.name === 'first')?.defaultValue;
    const first = this.intArg(f, 'first') ?? (typeof schemaFirst === 'number' ? schemaFirst : null);
    const isConnection = type !== undefined && type.name.endsWith('Connection');
    let multiplier = 1;
    if (isList) multiplier = f.name.value === 'edges' && connectionFirst !== null ? connectionFirst : (first ?? LIMITS.defaultListSize);
    const own = parent === this.schema.getMutationType() && JOB_FIELDS.has(f.name.value) ? LIMITS.jobCost : 1;
    const inner = f.selectionSet ? this.selectionSet(f.selectionSet, type, isConnection ? (first ?? LIMITS.defaultListSize) : null) : { depth: 0, cost: 0, aliases: 0 };
    return { depth: 1 + inner.depth, cost: add(own, mul(multiplier, inner.cost)), aliases: add(aliases, inner.aliases) };
  }

  /** A non-negative integer argument, from a literal or a variable; null when absent or not an integer. */
  private intArg(f: FieldNode, name: string): number | null {
    const a = f.arguments?.find((x) => x.name.value === name);
    if (!a) return null;
    let v: unknown = null;
    if (a.value.kind === Kind.INT) v = Number(a.value.value);
    else if (a.value.kind === Kind.VARIABLE) v = this.variables?.[a.value.name.value];
    return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
  }
}

/** Depth and aliases: properties of the document alone, checked at validation on both transports. */
const depthAndAliasesRule: ValidationRule = (ctx: ValidationContext): ASTVisitor => {
  const measurer = new Measurer(ctx.getSchema(), ctx.getDocument(), undefined);
  return {
    OperationDefinition(op: OperationDefinitionNode) {
      const m = measurer.operation(op);
      if (m.depth > LIMITS.maxDepth) ctx.reportError(limitError(`query depth ${m.depth} exceeds the limit of ${LIMITS.maxDepth}`, 'depth', op));
      if (m.aliases > LIMITS.maxAliases) ctx.reportError(limitError(`${m.aliases} aliases exceed the limit of ${LIMITS.maxAliases}`, 'aliases', op));
    },
  };
};

/**
 * The validation rules both transports add to graphql-js's specified ones. With introspection off,
 * `__schema`/`__type` are refused here (Apollo's own `introspection` flag is left on so that this list
 * stays the one place that decides, for HTTP and WebSocket alike).
 */
export function validationRules(opts: { introspection: boolean }): ValidationRule[] {
  return [MaxIntrospectionDepthRule, depthAndAliasesRule, ...(opts.introspection ? [] : [NoSchemaIntrospectionCustomRule])];
}

/** The cost of the operation that will run, with its (coerced) variables; [] when within the limit. */
export function checkCost(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown> | undefined): GraphQLError[] {
  const cost = new Measurer(schema, document, variables ?? {}).operation(operation).cost;
  if (cost <= LIMITS.maxCost) return [];
  return [limitError(`query cost ${cost === SATURATED ? `above ${SATURATED}` : cost} exceeds the limit of ${LIMITS.maxCost}`, 'cost', operation)];
}

/** For tests and docs: the measured cost and depth of an operation. */
export function measureOperation(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown> = {}): Measure {
  return new Measurer(schema, document, variables).operation(operation);
}
