// Types of the HTTP contract in docs/api.md (hand-written until the OpenAPI export exists).

export type Permission =
  | 'registry.read'
  | 'registry.edit'
  | 'registry.reveal'
  | 'registry.import'
  | 'registry.export'
  | 'audit.read'
  | 'users.manage'
  | 'aggregates.read'
  | 'org.manage'
  | 'institution.manage'

export type Role = 'system_admin' | 'security_admin' | 'audit_admin' | 'officer' | 'worker' | 'assessor'

export interface Scopes {
  edit: boolean
  aggregates: boolean
  individuals: boolean
}

export interface Me {
  id: number | string
  username: string
  display_name: string
  roles: string[]
  region_code: string
  region_name: string
  scopes: Scopes
  permissions: string[]
  totp_enabled: boolean
  /** A new or reset account: the password must be changed before anything else. */
  must_change_password: boolean
  profile: 'demo' | 'production'
  /** The organisation a bound account (a home's manager) works for. */
  org_id: string | null
  org_name: string | null
}

export type LoginResult =
  | { next: 'done'; me: Me }
  | { next: 'totp' }
  | { next: 'totp_enrol'; secret: string; otpauth_url: string }

export interface Problem {
  type?: string
  title?: string
  status?: number
  detail?: string
  request_id?: string
  errors?: { field: string; message: string }[]
}

export interface RegionNode {
  code: string
  name: string
  level: number
  children?: RegionNode[]
}

export type ElderStatus = 'active' | 'deceased' | 'moved_out'

export interface ElderSearch {
  name?: string
  region_code?: string
  age_min?: number
  age_max?: number
  living_status?: string
  economic_status?: string
  status?: ElderStatus
  /** 0–4, or none (no valid assessment). */
  ability_level?: string
  sort?: 'name' | 'birth_date' | '-birth_date' | 'region'
  page?: number
  page_size?: number
}

export interface ElderRow {
  id: number | string
  name: string
  sex: '男' | '女'
  /** 周岁: lists never carry the birth date (it would complete the masked ID). */
  age: number
  citizen_id_masked: string
  residence_region: string
  residence_region_name: string
  living_status: string | null
  economic_status: string | null
  status: ElderStatus
  /** Chinese labels the server may add next to the codes. */
  living_status_label?: string | null
  economic_status_label?: string | null
  status_label?: string | null
  /** Level of the current, still valid assessment (0–4). */
  ability_level?: number | null
  ability_level_name?: string | null
  ability_valid_until?: string | null
}

export interface ElderStatusEntry {
  kind: string
  value: string | null
  source: string
  since: string | null
}

export interface Elder extends ElderRow {
  /** Only in the audited detail. */
  birth_date: string
  hukou_region: string | null
  hukou_region_name: string | null
  address: string | null
  phone_masked: string | null
  lon: number | null
  lat: number | null
  family_planning_special: string | null
  family_planning_special_label?: string | null
  disability_grade: number | null
  entitled_veteran_family: boolean | null
  death_date: string | null
  moved_out_date: string | null
  statuses: ElderStatusEntry[]
  created_at: string
  updated_at: string
  version?: number
}

export interface Page<T> {
  items: T[]
  total: number
  /** true when more records match than were counted (the server stops counting at 10,000) */
  total_capped?: boolean
  page: number
  page_size: number
}

export type ImportState = 'queued' | 'running' | 'done' | 'failed'

export interface ImportJob {
  id: number | string
  state: ImportState
  dry_run: boolean
  file_name: string
  total: number
  processed: number
  accepted: number
  rejected: number
  inserted: number
  updated: number
  unchanged: number
  errors: { row: number; reason: string }[]
  message?: string | null
  /** The sheets read, sheets passed over and rows passed over (totals, signatures, notes). */
  layout?: ImportLayout | null
  /** A dry run's first people (up to 100) the file would change, field by field. */
  changes?: PersonChange[]
}

export interface PersonChange {
  row: number
  name: string
  citizen_id_masked: string
  fields: { field: string; old: string; new: string }[]
}

export interface ImportLayout {
  sheets: { name: string; header_row: number; rows: number }[]
  other_sheets: string[]
  skipped: { sheet: string; row: number; reason: string }[]
}

export interface AuditEntry {
  seq: number
  at: string
  actor: string
  action: string
  entity: string | null
  entity_id: string | number | null
  region_code?: string | null
  /** A JSON text (or plain text) describing the change. */
  detail: unknown
  hash: string
  actor_login: string
  action_zh: string
  entity_zh: string
  /** The row as a sentence: 县民政局 李科长 批准了 王** 的高龄津贴 */
  sentence: string
}

export interface UserRow {
  id: number | string
  username: string
  display_name: string
  roles: string[]
  region_code: string
  scopes: Scopes
  /** Unix seconds, while locked after failed logins. */
  locked_until: number | null
  totp_enabled: boolean
  disabled: boolean
  must_change_password: boolean
  org_id: string | null
  org_name: string | null
  /** A caregiver's staff record. */
  staff_id: string | null
}

export interface NewUser {
  username: string
  display_name: string
  password: string
  roles: string[]
  region_code: string
  scopes: Scopes
  /** Required for a home's manager, a dispatcher and a caregiver, absent for the other roles. */
  org_id: string | null
  /** A caregiver's staff record. */
  staff_id: string | null
}
