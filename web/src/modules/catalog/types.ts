// Types of the catalogue API (see /api/openapi.json, tag "catalog").
export interface Reason { ok: boolean; text: string }
export interface TierDef { label: string; rule?: string | null; amount: number; quota: number }
export interface Funding { province: number; city: number; county: number; town: number }
export interface ItemDef {
  code: string
  name: string
  category: string
  benefit_kind: 'cash_monthly' | 'service_monthly' | 'one_off' | 'meal_subsidy'
  provision: string
  standard: string
  department: string
  funding: Funding
  no_application: boolean
  /** Its monthly quota is used by home-visit orders */
  home_service?: boolean
  /** Unused visits carry into the next month */
  carry_over?: boolean
  rule: string
  tiers: TierDef[]
}
export interface VersionView {
  id: string
  region_code: string
  number: number
  state: 'draft' | 'published' | 'superseded'
  effective_from: string | null
  published_at: string | null
  published_by: string | null
  items: ItemDef[]
}
export interface CatalogView { region_code: string; published: VersionView | null; draft: VersionView | null }
export interface ItemCount {
  code: string
  name: string
  eligible: number
  granted: number
  proposed: number
  suspended: number
  ended: number
  new: number
  changed: number
  monthly_amount: number
}
export interface RunSummary {
  run_id: string
  region_code: string
  version_number: number
  on: string
  elders: number
  changes: number
  items: ItemCount[]
  millis: number
}
export interface ItemExplanation {
  catalog_region: string
  code: string
  name: string
  category: string
  benefit_kind: string
  no_application: boolean
  applies: boolean
  tier: string | null
  amount: number | null
  quota: number | null
  reasons: Reason[]
  entitlement_state: 'proposed' | 'granted' | 'suspended' | null
  entitlement_since: string | null
}

export const KIND_LABEL: Record<string, string> = {
  cash_monthly: '现金（按月）',
  service_monthly: '服务（按月）',
  one_off: '一次性',
  meal_subsidy: '助餐补贴（按餐）',
}
export const STATE_LABEL: Record<string, string> = {
  granted: '已享受',
  proposed: '待审批',
  suspended: '已暂停',
}

/** "50 元/月", "4 次/月（价值 120 元）", "1000 元（一次性）" */
export function benefitText(kind: string, amount: number | null | undefined, quota: number | null | undefined): string {
  const yuan = (a: number) => `${Number.isInteger(a) ? a : a.toFixed(2)} 元`
  if (amount == null) return '—'
  if (kind === 'one_off') return `${yuan(amount)}（一次性）`
  if (kind === 'meal_subsidy') return `每餐减免 ${yuan(amount)}`
  if (kind === 'service_monthly') return amount > 0 ? `${quota} 次/月（价值 ${yuan(amount)}）` : `${quota} 次/月`
  return `${yuan(amount)}/月`
}

export interface SimItem {
  code: string
  name: string
  before_people: number
  after_people: number
  before_monthly: number
  after_monthly: number
  before_one_off: number
  after_one_off: number
}
export interface SimTown { code: string; name: string; before_people: number; after_people: number; before_monthly: number; after_monthly: number }
export interface Simulation {
  region_code: string
  on: string
  elders: number
  before_version: number | null
  after_version: number
  items: SimItem[]
  towns: SimTown[]
  millis: number
}

export interface EntitlementRow {
  id: string
  elder_id: string
  name: string
  citizen_id_masked: string
  age: number
  residence_region_name: string
  item_code: string
  state: string
  tier: string
  amount: number
  quota: number
  since: string
  reasons: Reason[]
}
export interface EntitlementPage { items: EntitlementRow[]; total: number; page: number; page_size: number }

export type BatchState = 'draft' | 'reviewed' | 'paid'
export interface BatchRow { id: string; month: string; lines: number; total: number; state: BatchState; state_zh: string; created_by: string; created_at: string }
export interface BatchView {
  id: string
  catalog_region: string
  month: string
  state: BatchState
  state_zh: string
  created_by: string
  created_by_id: string | null
  created_at: string
  reviewed_by: string | null
  reviewed_at: string | null
  paid_by: string | null
  paid_at: string | null
  paid_note: string | null
  lines: number
  total: number
  by_town: { code: string; name: string; people: number; amount: number }[]
  by_item: { code: string; people: number; amount: number }[]
  by_level: { province: number; city: number; county: number; town: number }
  paid_after_death: number
  /** Organisations paid beside the people (homes' bed subsidies). */
  org_payments: { source: string; source_id: string; org_id: string; payee: string; bank_name: string; bank_account_name: string; bank_account: string; amount: number; town: string; purpose: string }[]
  org_total: number
}
export interface AfterDeath { batch_id: string; month: string; elder_id: string; name: string; citizen_id_masked: string; item_code: string; amount: number; death_date: string }
export interface BatchLine { elder_id: string; name: string; citizen_id_masked: string; age: number; town: string; village: string; item: string; amount: number }
export interface BatchLines { items: BatchLine[]; total: number }
