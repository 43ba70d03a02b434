export interface Definition {
  id: string
  name: string
  kind: string
  kind_zh: string
  unit: string
  definition: string
  source: 'records' | 'pending' | 'entered'
  pending: string | null
  within_year: boolean
  drillable: boolean
  /** The homes behind the figure can be listed. */
  by_home: boolean
  builtin: boolean
}
export type StatusCode = 'met' | 'on_track' | 'at_risk' | 'missed' | 'no_target' | 'no_data' | 'not_started'
export interface ChildValue {
  code: string
  name: string
  target: number | null
  value: number | null
  numerator: number | null
  denominator: number | null
  status: StatusCode
  status_zh: string
}
export interface EntryView { indicator_id: string; region_code: string; period: string; value: number; evidence: string; entered_by: string; entered_at: string }
export interface IndicatorRow extends Definition {
  target: number | null
  class: 'binding' | 'expected' | null
  class_zh: string | null
  direction: 'ge' | 'le' | null
  target_source: string | null
  /** The ancestor whose target applies, when the node has none of its own. */
  target_from: string | null
  value: number | null
  numerator: number | null
  denominator: number | null
  status: StatusCode
  status_zh: string
  worst_month: string | null
  entry: EntryView | null
  trend: { period: string; value: number | null }[]
  children: ChildValue[]
}
export interface Dashboard {
  region_code: string
  region_name: string
  year: number
  as_of: string | null
  today: string
  summary: Record<string, number>
  indicators: IndicatorRow[]
}
export interface ListedPerson { elder_id: string; name: string; citizen_id_masked: string; sex: string; age: number; town: string; village: string; note: string }
export interface PeopleList {
  indicator_id: string
  part: 'gap' | 'counted'
  region_code: string
  period: string
  day: string
  total: number
  by_town: { code: string; name: string; count: number }[]
  page: number
  page_size: number
  people: ListedPerson[]
}
export interface Target { region_code: string; year: number; indicator_id: string; class: string; direction: string; value: number; source: string | null }
export interface SheetRow { row: number; name: string; indicator_id: string | null; targets: Target[]; errors: string[]; new_indicator: boolean }
export interface SheetImport { dry_run: boolean; rows: SheetRow[]; accepted: number; rejected: number; written: number; created_indicators: number }

/** Status shown with an icon and words, so it reads without colour too. */
export const STATUS: Record<StatusCode, { icon: string; type: 'success' | 'primary' | 'warning' | 'danger' | 'info'; color: string }> = {
  met: { icon: '✓', type: 'success', color: '#2e7d32' },
  on_track: { icon: '↗', type: 'primary', color: '#1565c0' },
  at_risk: { icon: '!', type: 'warning', color: '#e65100' },
  missed: { icon: '✗', type: 'danger', color: '#c62828' },
  no_target: { icon: '○', type: 'info', color: '#9e9e9e' },
  no_data: { icon: '?', type: 'info', color: '#9e9e9e' },
  not_started: { icon: '…', type: 'info', color: '#9e9e9e' },
}

export function fmt(v: number | null | undefined, unit: string, kind = ''): string {
  if (v === null || v === undefined) return '—'
  if (kind === 'milestone') return v >= 1 ? '已完成' : '未完成'
  if (unit === '%') return `${v.toFixed(1)}%`
  return `${Number.isInteger(v) ? v.toLocaleString('zh-CN') : v.toFixed(2)}${unit === '人' || unit === '户' || unit === '张' || unit === '人次' ? ' ' + unit : unit}`
}
