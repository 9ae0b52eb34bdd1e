// Light and dark themes: 'system' follows the OS; the choice is saved in the workspace settings by the
// Settings page and mirrored here in localStorage so the first paint already has the right colours.

export type ThemeChoice = 'system' | 'light' | 'dark';
const KEY = 'adapter-studio-theme';

class Theme {
  choice = $state<ThemeChoice>((localStorage.getItem(KEY) as ThemeChoice | null) ?? 'system');
  private systemDark = $state(matchMedia('(prefers-color-scheme: dark)').matches);
  readonly effective = $derived<'light' | 'dark'>(this.choice === 'system' ? (this.systemDark ? 'dark' : 'light') : this.choice);

  constructor() {
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', (e) => (this.systemDark = e.matches));
  }

  set(choice: ThemeChoice): void {
    this.choice = choice;
    localStorage.setItem(KEY, choice);
  }

  toggle(): void {
    this.set(this.effective === 'dark' ? 'light' : 'dark');
  }
}

export const theme = new Theme();
