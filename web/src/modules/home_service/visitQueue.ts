// A caregiver's steps, kept on the phone until the server has them. A village has patches with no
// signal: a check-in or check-out is saved here first with an id made on the phone and the
// phone's time, sent at once when there is a connection and again (same id) until the server
// answers. The server does a step id once, so a step sent twice is done once. A step the server
// refuses (the order was cancelled, a wrong code) leaves the queue with the reason shown.
import { ref } from 'vue'
import { ApiError, post } from '../../api/http'

export interface VisitOrder {
  id: string; provider_name: string; elder_name: string; service_zh: string; planned_start: string
  planned_minutes: number; state: string; state_zh: string; check_in_at: string | null; check_out_at: string | null
  confirmed_at: string | null; note: string | null; address: string | null; elder_lon: number | null; elder_lat: number | null
  tasks?: { code: string; name: string; done: boolean }[]; confirmed_by_zh?: string | null; phone_on_file?: boolean
}

export interface QueuedStep {
  step_id: string
  order_id: string
  action: 'accept' | 'check_in' | 'check_out' | 'confirm' | 'no_show'
  at?: string
  lon?: number
  lat?: number
  code?: string
  note?: string
  /** check_out: the tasks done */
  tasks?: string[]
  /** confirm: the elder's signature (PNG data URL) instead of a code */
  signature?: string
}

/** What a step makes of an order, shown before the server has it. */
export const NEXT: Record<string, [string, string]> = {
  accept: ['accepted', '已接单'],
  check_in: ['checked_in', '服务中'],
  check_out: ['checked_out', '待确认'],
  confirm: ['confirmed', '已完成'],
  no_show: ['no_show', '未上门'],
}

/** A random UUID; crypto.randomUUID exists only on HTTPS pages, getRandomValues everywhere. */
export function uuid(): string {
  const b = crypto.getRandomValues(new Uint8Array(16))
  b[6] = (b[6] & 0x0f) | 0x40
  b[8] = (b[8] & 0x3f) | 0x80
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

const key = (user: string) => `yiyang.visits.queue.${user}`
const dayKey = (user: string) => `yiyang.visits.day.${user}`

export function useVisitQueue(user: string, onDone: (o: VisitOrder) => void) {
  const queue = ref<QueuedStep[]>(JSON.parse(localStorage.getItem(key(user)) || '[]'))
  const refused = ref<{ step: QueuedStep; reason: string }[]>([])
  const online = ref(navigator.onLine)
  let flushing = false

  /** False when the phone's storage is full: what is waiting then lives only while the page is open. */
  const kept = ref(true)
  const save = () => {
    try {
      localStorage.setItem(key(user), JSON.stringify(queue.value))
      kept.value = true
    } catch {
      kept.value = false
    }
  }

  async function flush() {
    if (flushing || queue.value.length === 0) return
    flushing = true
    try {
      while (queue.value.length > 0) {
        const s = queue.value[0]
        try {
          const { order_id, ...body } = s
          const o = await post<VisitOrder>(`/service-orders/${order_id}/steps`, body, { silent: true })
          queue.value.shift()
          save()
          online.value = true
          onDone(o)
        } catch (e) {
          const status = e instanceof ApiError ? e.status : 0
          // No connection, the server busy or restarting: keep it and try again later.
          if (status === 0 || status === 429 || status >= 500 || status === 401) {
            online.value = status !== 0 && navigator.onLine
            return
          }
          // Refused for good: say why, and let the rest go on.
          queue.value.shift()
          save()
          refused.value.push({ step: s, reason: (e as ApiError).problem.detail || '操作未能完成' })
        }
      }
    } finally {
      flushing = false
    }
  }

  function push(step: Omit<QueuedStep, 'step_id' | 'at'>) {
    // The phone's time matters for a check-in or check-out sent late; the rest are timed on arrival.
    const timed = step.action === 'check_in' || step.action === 'check_out'
    queue.value.push({ ...step, step_id: uuid(), at: timed ? new Date().toISOString() : undefined } as QueuedStep)
    save()
    void flush()
  }

  const pending = (orderId: string) => queue.value.filter((s) => s.order_id === orderId)

  window.addEventListener('online', () => {
    online.value = true
    void flush()
  })
  window.addEventListener('offline', () => (online.value = false))
  const timer = window.setInterval(() => void flush(), 15_000)

  /** The day's orders as last seen, for a page opened without a connection. */
  const keepDay = (orders: VisitOrder[]) => localStorage.setItem(dayKey(user), JSON.stringify(orders))
  const lastDay = (): VisitOrder[] => JSON.parse(localStorage.getItem(dayKey(user)) || '[]')

  return { queue, refused, online, kept, push, flush, pending, keepDay, lastDay, stop: () => window.clearInterval(timer) }
}
