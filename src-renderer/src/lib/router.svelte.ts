// Hash routes: #/datasets/ds_123 -> page 'datasets', param 'ds_123'. The hash keeps serve mode's ?token= in
// place and needs no server routes.

export const PAGES = [
  { id: 'models', label: 'Models', key: '1' },
  { id: 'datasets', label: 'Datasets', key: '2' },
  { id: 'train', label: 'Train', key: '3' },
  { id: 'runs', label: 'Runs', key: '4' },
  { id: 'compare', label: 'Compare', key: '5' },
  { id: 'chat', label: 'Chat', key: '6' },
  { id: 'settings', label: 'Settings', key: '7' },
] as const;

export type PageId = (typeof PAGES)[number]['id'];

function parse(hash: string): { page: PageId; param: string | null } {
  const [, page, param] = /^#\/([a-z]+)(?:\/([^/?#]+))?/.exec(hash) ?? [];
  const known = PAGES.find((p) => p.id === page);
  return { page: known ? known.id : 'models', param: known && param ? decodeURIComponent(param) : null };
}

class Router {
  page = $state<PageId>('models');
  param = $state<string | null>(null);

  constructor() {
    const sync = () => {
      const r = parse(location.hash);
      this.page = r.page;
      this.param = r.param;
    };
    sync();
    window.addEventListener('hashchange', sync);
  }

  go(page: PageId, param: string | null = null): void {
    location.hash = `#/${page}${param ? `/${encodeURIComponent(param)}` : ''}`;
  }
}

export const router = new Router();
