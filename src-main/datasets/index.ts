// Dataset curation on top of the workspace store: import, validate, dedupe, split, measure, export, generate.

export { readDatasetFile, importDataset, detectFormat, looksLikeDataset, DEFAULT_LIMITS, type ReadOptions, type ImportOptions, type ImportResult, type ParsedDataset } from './import.js';
export { DatasetImportError, formatIssue, type ImportIssue, type ImportReport, type DatasetFileFormat } from './issues.js';
export { FIELD_ALIASES, type FieldMap, type RecordShape } from './records.js';
export type { ConversationMode } from './conversations.js';
export { findExactDuplicates, findNearDuplicates, removeDuplicates, type DuplicateGroup } from './dedupe.js';
export { findNearDuplicateGroups, type NearDuplicateOptions } from './near-duplicates.js';
export { assignSplits, planSplits, type SplitOptions, type SplitResult } from './splits.js';
export { tokenLengthStats, datasetTokenStats, alpacaTrainingText, type TokenStats, type TokenStatsOptions, type CountTokens } from './stats.js';
export { EXPORT_IMAGES_DIR, exportDataset, type ExportFormat, type ExportOptions, type ExportResult } from './export.js';
export { rougeL } from './rouge.js';
export { OpenAICompatibleGenerator, GeneratorError, type TextGenerator, type CompletionOptions, type OpenAICompatibleConfig } from './generator.js';
export {
  selfInstruct,
  loadSeedTasks,
  bundledSeedTasksPath,
  buildSelfInstructPrompt,
  parseGeneratedTasks,
  DEFAULT_BANNED_WORDS,
  GENERATOR_ENDPOINT_SETTING,
  endpointGeneratorFromSettings,
  type SelfInstructOptions,
  type SelfInstructResult,
  type RejectReason,
} from './self-instruct.js';
