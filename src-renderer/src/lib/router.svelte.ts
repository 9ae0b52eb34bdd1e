// Hash routes: #/datasets/ds_123 -> page 'datasets', param 'ds_123'; an optional third part names a view
// (#/compare/cmps_1/blind opens a comparison on its blind-rating tab). The hash keeps serve mode's ?token= in
// place and needs no server routes.

export const PAGES = [
  { id: 'models', label: 'Models', key: '1' },
  { id: 'datasets', label: 'Datasets', key: '2' },
  { id: 'train', label: 'Train', key: '3' },
  { id: 'runs', label: 'Runs', key: '4' },
  { id: 'compare', label: 'Compare', key: '5' },
  { id: 'evaluate', label: 'Evaluate', key: '6' },
  { id: 'sweeps', label: 'Sweeps', key: '7' },
  { id: 'chat', label: 'Chat', key: '8' },
  { id: 'settings', label: 'Settings', key: '9' },
] as const;

export type PageId = (typeof PAGES)[number]['id'];

function parse(hash: string): { page: PageId; param: string | null; view: string | null } {
  const [, page, param, view] = /^#\/([a-z]+)(?:\/([^/?#]+))?(?:\/([^/?#]+))?/.exec(hash) ?? [];
  const known = PAGES.find((p) => p.id === page);
  return {
    page: known ? known.id : 'models',
    param: known && param ? decodeURIComponent(param) : null,
    view: known && param && view ? decodeURIComponent(view) : null,
  };
}

function hashOf(page: PageId, param: string | null, view: string | null): string {
  return `#/${page}${param ? `/${encodeURIComponent(param)}${view ? `/${encodeURIComponent(view)}` : ''}` : ''}`;
}

class Router {
  page = $state<PageId>('models');
  param = $state<string | null>(null);
  view = $state<string | null>(null);

  constructor() {
    const sync = () => {
      const r = parse(location.hash);
      this.page = r.page;
      this.param = r.param;
      this.view = r.view;
    };
    sync();
    window.addEventListener('hashchange', sync);
  }

  go(page: PageId, param: string | null = null, view: string | null = null): void {
    location.hash = hashOf(page, param, view);
  }

  /** Like go, in place of the current history entry (Back does not return to it). */
  replace(page: PageId, param: string | null = null, view: string | null = null): void {
    location.replace(hashOf(page, param, view));
  }
}

export const router = new Router();
