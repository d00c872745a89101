// Entry point: sign in with an API token (checked with `me`), then the editor. The token is kept in
// localStorage so a reload stays signed in and the /graphql explorer can fill in its header.
import { byId } from './dom';
import { EditorApp } from './app';
import { GraphqlClient, GraphqlError } from './graphqlClient';
import { ME } from './operations';

export const TOKEN_KEY = 'fisedit.token';

let app: EditorApp | null = null;

async function signIn(token: string): Promise<void> {
  const gql = new GraphqlClient(token);
  const { me } = await gql.request<{ me: { name: string } }>(ME);
  localStorage.setItem(TOKEN_KEY, token);
  byId('sign-in-view').hidden = true;
  byId('app-view').hidden = false;
  byId('sign-out').hidden = false;
  app = new EditorApp(gql, me.name);
  await app.start();
}

function signOut(): void {
  app?.stop();
  app = null;
  localStorage.removeItem(TOKEN_KEY);
  location.reload();
}

function boot(): void {
  byId('sign-in').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = byId<HTMLInputElement>('token').value.trim();
    byId('sign-in-error').textContent = '';
    signIn(token).catch((err) => {
      byId('sign-in-error').textContent = err instanceof GraphqlError && err.code === 'UNAUTHENTICATED' ? 'That token is not valid (or was revoked).' : `Sign-in failed: ${(err as Error).message}`;
    });
  });
  byId('sign-out').onclick = signOut;
  const saved = localStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved).catch(() => localStorage.removeItem(TOKEN_KEY));
}

boot();
