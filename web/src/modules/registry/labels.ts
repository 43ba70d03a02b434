// Code lists of the registry (same codes as crates/yiyang/src/registry/model.rs). The API carries the
// code; screens show the Chinese. Unknown values are shown as they come.

export type Option = { value: string; label: string }

export const LIVING_STATUS: Option[] = [
  { value: 'living_alone', label: '独居' },
  { value: 'empty_nest', label: '空巢' },
  { value: 'left_behind', label: '留守' },
  { value: 'with_children', label: '与子女同住' },
]

export const ECONOMIC_STATUS: Option[] = [
  { value: 'extreme_poverty', label: '特困' },
  { value: 'minimum_living', label: '低保' },
  { value: 'near_minimum_living', label: '低保边缘' },
  { value: 'ordinary', label: '一般' },
]

export const FAMILY_PLANNING: Option[] = [
  { value: 'none', label: '无' },
  { value: 'lost_only_child', label: '失独' },
  { value: 'disabled_only_child', label: '伤残' },
]

export const ELDER_STATUS: Option[] = [
  { value: 'active', label: '在册' },
  { value: 'deceased', label: '已故' },
  { value: 'moved_out', label: '已迁出' },
]

/** Search filter by the current assessment's level; none = no valid assessment. */
export const ABILITY_LEVEL: Option[] = [
  { value: '0', label: '能力完好' },
  { value: '1', label: '轻度失能' },
  { value: '2', label: '中度失能' },
  { value: '3', label: '重度失能' },
  { value: '4', label: '完全失能' },
  { value: 'none', label: '无有效评估' },
]

export const STATUS_KIND: Record<string, string> = {
  living_status: '居住状况',
  economic_status: '经济状况',
  family_planning_special: '计划生育特殊家庭',
  disability_grade: '残疾等级',
  entitled_veteran_family: '优抚对象',
  status: '档案状态',
}

const ALL: Record<string, string> = Object.fromEntries(
  [...LIVING_STATUS, ...ECONOMIC_STATUS, ...FAMILY_PLANNING, ...ELDER_STATUS].map((o) => [o.value, o.label]),
)

export function label(list: Option[], v: string | null | undefined): string {
  if (v === null || v === undefined || v === '') return '—'
  return list.find((o) => o.value === v || o.label === v)?.label ?? v
}

/** Label of any registry code (for the statuses history, where the kind decides the list). */
export function anyLabel(v: string | null | undefined): string {
  if (v === null || v === undefined || v === '') return '—'
  return ALL[v] ?? v
}

/** Accept either the code or the Chinese label from the server and return the code (for edit forms). */
export function codeOf(list: Option[], v: string | null | undefined): string {
  if (!v) return ''
  return list.find((o) => o.value === v || o.label === v)?.value ?? v
}

export const STATUS_TAG: Record<string, 'success' | 'info' | 'warning'> = {
  active: 'success',
  deceased: 'info',
  moved_out: 'warning',
}
