// Keyboard shortcuts. Alt+1..9 switch pages, "/" focuses the page's search box, "?" lists the shortcuts.
// Page-specific keys (Ctrl+Enter to send, Ctrl+Z to undo an edit) live in the page that owns the action.

import { PAGES, router } from './router.svelte';

export const SHORTCUTS: { keys: string; what: string }[] = [
  ...PAGES.map((p) => ({ keys: `Alt+${p.key}`, what: `go to ${p.label}` })),
  { keys: '/', what: 'search (Datasets, Runs)' },
  { keys: 'Ctrl+Enter', what: 'send / start (Chat, Compare, Evaluate, Train)' },
  { keys: 'Ctrl+Z', what: 'undo the last dataset edit (outside text fields)' },
  { keys: 'Esc', what: 'close the open editor or dialog' },
  { keys: 'Shift+D', what: 'switch light / dark theme' },
  { keys: '?', what: 'show these shortcuts' },
];

export function isTyping(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null;
  return !!t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName));
}

export function installGlobalShortcuts(actions: { toggleTheme: () => void; showHelp: () => void }): () => void {
  const onKey = (e: KeyboardEvent) => {
    if (e.altKey && !e.ctrlKey && !e.metaKey) {
      const page = PAGES.find((p) => p.key === e.key);
      if (page) {
        e.preventDefault();
        router.go(page.id);
      }
      return;
    }
    if (isTyping(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === '/') {
      const search = document.querySelector<HTMLInputElement>('[data-search]');
      if (search) {
        e.preventDefault();
        search.focus();
      }
    } else if (e.key === '?') {
      actions.showHelp();
    } else if (e.key === 'D' && e.shiftKey) {
      actions.toggleTheme();
    }
  };
  window.addEventListener('keydown', onKey);
  return () => window.removeEventListener('keydown', onKey);
}
