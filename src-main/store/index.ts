// The workspace store: open a workspace folder and use its stores (workspace.datasets, .runs, ...).

export { openWorkspace, defaultWorkspaceDir, migrate, Workspace, DATABASE_FILE, type OpenOptions, type RecoveryReport } from './workspace.js';
export { OWNER_LOCK_FILE, describeOwner, type OwnerRecord } from './owner-lock.js';
export { SCHEMA_VERSION, MIGRATIONS } from './schema.js';
export { StoreError, NotFoundError, OwnedElsewhereError } from './errors.js';
export { contentHash, normalizeText } from './content-hash.js';
export type * from './ids.js';
export * from './datasets.js';
export * from './images.js';
export * from './runs.js';
export * from './models.js';
export * from './evaluations.js';
export * from './sweeps.js';
export * from './comparisons.js';
export * from './chats.js';
export { SettingsStore } from './settings.js';
