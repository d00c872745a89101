// The offline GraphQL explorer served at GET /graphql to browsers: GraphiQL from its npm package, bundled
// here (no CDN). Queries and mutations go over HTTP with the headers in its editor, which start as the
// web client's token; subscriptions go over graphql-ws with the same Authorization header.
import type { Fetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import { getOperationAST, parse } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import { createRoot } from 'react-dom/client';

const TOKEN_KEY = 'fisedit.token'; // where the web client (main.ts) keeps the signed-in token

const sockets = new Map<string, Client>();

function socketFor(authorization: string): Client {
  let c = sockets.get(authorization);
  if (!c) {
    c = createClient({ url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`, connectionParams: { authorization }, lazy: true });
    sockets.set(authorization, c);
  }
  return c;
}

function isSubscription(query: string, operationName: string | null | undefined): boolean {
  try {
    return getOperationAST(parse(query), operationName ?? undefined)?.operation === 'subscription';
  } catch {
    return false; // the server reports the syntax error
  }
}

const fetcher: Fetcher = async (params, opts) => {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(opts?.headers ?? {}) };
  if (isSubscription(params.query, params.operationName)) {
    const auth = Object.entries(headers).find(([k]) => k.toLowerCase() === 'authorization')?.[1] ?? '';
    return socketFor(auth).iterate({ query: params.query, operationName: params.operationName ?? undefined, variables: params.variables });
  }
  const res = await fetch('/graphql', { method: 'POST', headers, body: JSON.stringify(params) });
  return res.json();
};

const token = localStorage.getItem(TOKEN_KEY);
const headers = JSON.stringify({ Authorization: `Bearer ${token ?? 'YOUR_TOKEN (fisedit token create --user NAME)'}` }, null, 2);
const defaultQuery = '# FISEdit API: see the Docs panel for the schema.\n{\n  me { name }\n  trees(first: 10) { edges { node { id title myRole } } }\n}\n';

createRoot(document.getElementById('graphiql')!).render(<GraphiQL fetcher={fetcher} headers={headers} defaultQuery={defaultQuery} defaultEditorToolsVisibility="headers" />);
