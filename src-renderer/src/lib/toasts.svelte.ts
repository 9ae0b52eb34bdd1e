// Short messages about things that finished elsewhere (an import, a run). Errors belong where they happened;
// toasts only confirm.

export interface Toast {
  id: number;
  text: string;
  kind: 'info' | 'error';
}

class Toasts {
  items = $state<Toast[]>([]);
  private next = 1;

  show(text: string, kind: Toast['kind'] = 'info', ms = 4000): void {
    const id = this.next++;
    this.items.push({ id, text, kind });
    setTimeout(() => this.dismiss(id), ms);
  }

  dismiss(id: number): void {
    this.items = this.items.filter((t) => t.id !== id);
  }
}

export const toasts = new Toasts();
