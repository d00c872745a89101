// tsconfig uses moduleResolution "node", which does not read package.json "exports"; graphql-ws 6 only
// publishes its ws adapter there ('graphql-ws/use/ws'). Node resolves it at run time; this points the
// type checker at the same file.
declare module 'graphql-ws/use/ws' {
  export * from 'graphql-ws/dist/use/ws';
}
