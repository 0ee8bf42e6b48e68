// Hash routes (#/functions/touchy): the daemon serves one static page, and a reload or a shared
// link lands on the same view.

import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'functions' }
  | { page: 'function'; name: string }
  | { page: 'snapshots'; id?: string }
  | { page: 'vms' }
  | { page: 'metrics' };

export function parseRoute(hash: string): Route {
  const [page, arg] = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (page === 'functions' && arg) return { page: 'function', name: arg };
  if (page === 'snapshots') return arg ? { page: 'snapshots', id: arg } : { page: 'snapshots' };
  if (page === 'vms') return { page: 'vms' };
  if (page === 'metrics') return { page: 'metrics' };
  return { page: 'functions' };
}

export function href(route: Route): string {
  switch (route.page) {
    case 'function':
      return `#/functions/${encodeURIComponent(route.name)}`;
    case 'snapshots':
      return route.id ? `#/snapshots/${encodeURIComponent(route.id)}` : '#/snapshots';
    default:
      return `#/${route.page}`;
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
