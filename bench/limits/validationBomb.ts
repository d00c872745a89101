// Validation time of fragment-spread bombs, with graphql-js's specified rules plus the API's limits
// (docs/security.md, "Linear validation"). Two shapes:
//   flat    F0 = { id name }, Fi = { ...F(i-1) ×4 }          → me { ...Fk } expands to 2·4^k fields
//   nested  Fi = { parent { ...F(i-1) } tree { root { ...F(i-1) } } ... on Node { parent { ...F(i-1) } } children { ...F(i-1) } }
// Run: npx tsx bench/limits/validationBomb.ts [--levels 9,14,40] [--old FILE]
//   --old FILE: a limits.ts of the former kind (exports limitRules(); e.g. `git show 615d5d9:src/api/limits.ts
//   > /tmp/oldLimits.ts`), measured instead of the current rules. Prints one JSON line per document.
import { parse, specifiedRules, validate, type OperationDefinitionNode, type ValidationRule } from 'graphql';
import * as path from 'path';
import { parseArgs } from 'util';
import { checkCost, validationRules } from '../../src/api/limits';
import { loadSchema } from '../../src/api/server';

function flat(k: number): string {
  const frags = ['fragment F0 on User { id name }'];
  for (let i = 1; i <= k; i++) frags.push(`fragment F${i} on User { ...F${i - 1} ...F${i - 1} ...F${i - 1} ...F${i - 1} }`);
  return `query { me { ...F${k} } } ${frags.join(' ')}`;
}

function nested(k: number): string {
  const frags = ['fragment F0 on Node { id }'];
  for (let i = 1; i <= k; i++) frags.push(`fragment F${i} on Node { parent { ...F${i - 1} } tree { root { ...F${i - 1} } } ... on Node { parent { ...F${i - 1} } } children { ...F${i - 1} } }`);
  return `query { node(id: "x") { ...F${k} } } ${frags.join(' ')}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { levels: { type: 'string', default: '6,9,14,40' }, old: { type: 'string' } } });
  const levels = values.levels!.split(',').map(Number);
  const schema = loadSchema();
  const old = values.old ? ((await import(path.resolve(values.old))) as { limitRules: () => ValidationRule[] }) : null;
  const rules = [...specifiedRules, ...(old ? old.limitRules() : validationRules({ introspection: true }))];
  for (const [shape, build] of [['flat', flat], ['nested', nested]] as const) {
    for (const k of levels) {
      const query = build(k);
      const doc = parse(query);
      const started = performance.now();
      let errors: string[];
      try {
        errors = validate(schema, doc, rules).map((e) => e.message);
        if (!old) errors.push(...checkCost(schema, doc, doc.definitions[0] as OperationDefinitionNode, {}).map((e) => e.message));
      } catch (e) {
        errors = [`${(e as Error).name}: ${(e as Error).message}`];
      }
      const ms = performance.now() - started;
      console.log(JSON.stringify({ rules: old ? values.old : 'current', shape, levels: k, chars: query.length, ms: Math.round(ms * 10) / 10, errors }));
    }
  }
}

void main();
