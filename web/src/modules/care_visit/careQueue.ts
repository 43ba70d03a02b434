// A village worker's visits, kept on the phone until the server has them. Villages have patches
// with no signal: a visit is saved here first under an id made on the phone, with the phone's
// time, sent at once when there is a connection and again (same id) until the server answers.
// The server records an id once, so a visit sent twice is one visit. A visit the server refuses
// for good (the elder was moved out of her area, a time too long ago) leaves the queue with the
// reason shown.
import { ref } from 'vue'
import { ApiError, post } from '../../api/http'
import { uuid } from '../home_service/visitQueue'

export interface DueItem {
  elder_id: string; name: string; citizen_id_masked: string; sex: string; age: number; region_code: string
  village: string; address: string | null; phone_masked: string | null; frequency: string; frequency_zh: string
  standing: 'done' | 'due' | 'overdue'; standing_zh: string; due_by: string | null; missed_period_end: string | null
  last_visited_on: string | null; worker_name: string | null
}

export interface DuePage { today: string; total: number; done: number; due: number; overdue: number; items: DueItem[] }

export interface Visit {
  id: string; elder_id: string; elder_name: string; village: string; visited_on: string; visited_at: string
  mode: string; mode_zh: string; findings_zh: string[]; flags: string[]; flags_zh: string[]; note: string | null
  visitor_name: string; follow_ups: string[]; referral: string | null; referral_note: string | null
}

export interface QueuedVisit {
  id: string
  elder_id: string
  elder_name: string
  mode: 'door' | 'phone' | 'video'
  visited_at: string
  findings: string[]
  flags: string[]
  note?: string
}

export const MODES: [string, string][] = [['door', '上门'], ['phone', '电话'], ['video', '视频']]
export const FINDINGS: [string, string][] = [
  ['health_ok', '身体状况稳定'], ['meals_ok', '饮食起居正常'], ['home_safe', '居住环境安全（水电气无隐患）'],
  ['meds_ok', '按时服药'], ['mood_ok', '精神状态良好'], ['contact_ok', '子女或亲属常联系'],
]
/** Risk flags, and what each sets going once the visit reaches the server. */
export const FLAGS: [string, string, string][] = [
  ['condition_change', '身体或认知状况明显变化', '提请复评'],
  ['fell', '近期跌倒、走失或噎食', '提请复评'],
  ['danger', '现场发现紧急情况', '立即报 12349 接警台'],
  ['needs_care', '生活照料困难，需要上门服务', '转介居家服务'],
  ['unsafe_home', '居住环境存在安全隐患', ''],
  ['lonely', '情绪低落、孤独', ''],
]

const key = (user: string) => `yiyang.carevisits.queue.${user}`
const refusedKey = (user: string) => `yiyang.carevisits.refused.${user}`
const listKey = (user: string) => `yiyang.carevisits.due.${user}`

export function useCareQueue(user: string, onDone: (v: Visit) => void) {
  const queue = ref<QueuedVisit[]>(JSON.parse(localStorage.getItem(key(user)) || '[]'))
  // Refused visits stay on the phone (with the reason) until she closes the notice: what she
  // wrote is not lost with a reload.
  const refused = ref<{ visit: QueuedVisit; reason: string }[]>(JSON.parse(localStorage.getItem(refusedKey(user)) || '[]'))
  const keepRefused = () => localStorage.setItem(refusedKey(user), JSON.stringify(refused.value))
  const online = ref(navigator.onLine)
  let flushing = false
  const save = () => localStorage.setItem(key(user), JSON.stringify(queue.value))

  async function flush() {
    if (flushing || queue.value.length === 0) return
    flushing = true
    try {
      while (queue.value.length > 0) {
        const q = queue.value[0]
        try {
          const { elder_name: _name, ...body } = q
          const v = await post<Visit>('/care-visits', body, { silent: true })
          queue.value.shift()
          save()
          online.value = true
          onDone(v)
        } catch (e) {
          const status = e instanceof ApiError ? e.status : 0
          // No connection, the server busy or restarting, signed out: keep it and try later.
          if (status === 0 || status === 429 || status >= 500 || status === 401) {
            online.value = status !== 0 && navigator.onLine
            return
          }
          queue.value.shift()
          save()
          refused.value.push({ visit: q, reason: (e as ApiError).problem.detail || '未能保存' })
          keepRefused()
        }
      }
    } finally {
      flushing = false
    }
  }

  function push(v: Omit<QueuedVisit, 'id' | 'visited_at'>) {
    queue.value.push({ ...v, id: uuid(), visited_at: new Date().toISOString() })
    save()
    void flush()
  }

  const waiting = (elderId: string) => queue.value.some((q) => q.elder_id === elderId)

  const onOnline = () => {
    online.value = true
    void flush()
  }
  const onOffline = () => (online.value = false)
  window.addEventListener('online', onOnline)
  window.addEventListener('offline', onOffline)
  const timer = window.setInterval(() => void flush(), 15_000)

  /** The list as last seen, for a page opened without a connection. */
  const keepList = (p: DuePage) => localStorage.setItem(listKey(user), JSON.stringify(p))
  const lastList = (): DuePage | null => JSON.parse(localStorage.getItem(listKey(user)) || 'null')

  /** She has read why a visit was refused. */
  const dismiss = (i: number) => {
    refused.value.splice(i, 1)
    keepRefused()
  }

  return {
    queue, refused, dismiss, online, push, flush, waiting, keepList, lastList,
    stop: () => {
      window.clearInterval(timer)
      window.removeEventListener('online', onOnline)
      window.removeEventListener('offline', onOffline)
    },
  }
}
