// The columns of ScienceQA's accuracy table (the LLaMA-Adapter paper's Table 2 layout): the official key of
// tools/evaluate_acc.py and the short heading the paper prints. Shared by the CLI, the demo and the Evaluate page.

export const SCIENCEQA_TABLE_COLUMNS: readonly (readonly [key: string, heading: string])[] = [
  ['acc_natural', 'NAT'],
  ['acc_social', 'SOC'],
  ['acc_language', 'LAN'],
  ['acc_has_text', 'TXT'],
  ['acc_has_image', 'IMG'],
  ['acc_no_context', 'NO'],
  ['acc_grade_1_6', 'G1-6'],
  ['acc_grade_7_12', 'G7-12'],
  ['acc_average', 'Avg'],
];
