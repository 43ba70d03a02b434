// A caregiver's visit photos, kept on the phone until the server has them. A photo is a few MB:
// too large for localStorage, so it waits in IndexedDB under an id made on the phone, with the
// account that took it (a station's phone is shared), and is sent (same id, so twice is kept
// once) when there is a connection and the visit's check-in has reached the server; the server
// takes them until a day after the visit is confirmed. A photo the server refuses for good
// leaves with the reason shown.
import { ref } from 'vue'
import { ApiError, post } from '../../api/http'
import { uuid } from './visitQueue'

interface QueuedPhoto {
  photo_id: string
  order_id: string
  user: string
  blob: Blob
}

const DB = 'yiyang-photos'

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1)
    r.onupgradeneeded = () => r.result.createObjectStore('queue', { keyPath: 'photo_id' })
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })
}

async function store<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest): Promise<T> {
  const db = await open()
  try {
    return await new Promise<T>((resolve, reject) => {
      const tx = db.transaction('queue', mode)
      const r = f(tx.objectStore('queue'))
      tx.oncomplete = () => resolve(r.result as T)
      // A full disk aborts the transaction without an error event on it.
      tx.onerror = () => reject(tx.error)
      tx.onabort = () => reject(tx.error ?? new Error('aborted'))
    })
  } finally {
    db.close()
  }
}

/**
 * `stepsWaiting`: the visit's steps not yet on the server that must go first (the check-in);
 * a confirmation need not, the server takes photos after it.
 */
export function usePhotoQueue(user: string, stepsWaiting: (orderId: string) => number) {
  const waiting = ref<{ photo_id: string; order_id: string }[]>([])
  const refused = ref<string[]>([])
  const sent = ref<Record<string, number>>({})
  let flushing = false

  const mine = async () => (await store<QueuedPhoto[]>('readonly', (s) => s.getAll())).filter((p) => p.user === user)

  async function load() {
    waiting.value = (await mine()).map(({ photo_id, order_id }) => ({ photo_id, order_id }))
  }

  async function add(orderId: string, file: File) {
    if (file.size > 8 * 1024 * 1024) {
      refused.value.push('照片超过 8 MB，请在相机设置中调低分辨率后重拍')
      return
    }
    try {
      await store('readwrite', (s) => s.put({ photo_id: uuid(), order_id: orderId, user, blob: file }))
    } catch {
      refused.value.push('手机存储空间不足或浏览器不允许保存，照片未能保存，请清理空间后重拍')
      return
    }
    await load()
    void flush()
  }

  async function flush() {
    if (flushing) return
    flushing = true
    try {
      for (const p of await mine()) {
        // The check-in first: a photo before it reaches the server would be refused.
        if (stepsWaiting(p.order_id) > 0) continue
        try {
          await post(`/service-orders/${p.order_id}/photos?photo_id=${p.photo_id}`, p.blob, { silent: true })
          sent.value[p.order_id] = (sent.value[p.order_id] ?? 0) + 1
        } catch (e) {
          const status = e instanceof ApiError ? e.status : 0
          if (status === 0 || status === 429 || status >= 500 || status === 401) return
          refused.value.push(`照片未保存：${(e as ApiError).problem.detail || '上传失败'}`)
        }
        await store('readwrite', (s) => s.delete(p.photo_id))
        await load()
      }
    } finally {
      flushing = false
    }
  }

  const pending = (orderId: string) => waiting.value.filter((p) => p.order_id === orderId).length
  void load().then(flush).catch(() => {})
  const onOnline = () => void flush()
  window.addEventListener('online', onOnline)
  const timer = window.setInterval(() => void flush().catch(() => {}), 20_000)
  const stop = () => {
    window.clearInterval(timer)
    window.removeEventListener('online', onOnline)
  }
  return { waiting, refused, sent, add, flush, pending, stop }
}
