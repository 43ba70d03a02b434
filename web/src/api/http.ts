// Thin fetch wrapper: JSON in/out, same-origin cookies, RFC 9457 problem documents shown in ElMessage
// (Chinese `detail` + `request_id`), and a hook for 401 so the router can send the user to /login.
import { h } from 'vue'
import type { Problem } from './types'

export const API_BASE = '/api/v1'

export class ApiError extends Error {
  readonly status: number
  readonly problem: Problem
  constructor(status: number, problem: Problem) {
    super(problem.detail || problem.title || `HTTP ${status}`)
    this.status = status
    this.problem = problem
  }
}

export interface RequestOptions {
  /** Do not show an error message (the caller handles it). */
  silent?: boolean
  /** Do not run the 401 → /login redirect (login form, session probe). */
  noAuthRedirect?: boolean
  signal?: AbortSignal
}

type UnauthorizedHandler = () => void
let onUnauthorized: UnauthorizedHandler = () => {}
export function setUnauthorizedHandler(fn: UnauthorizedHandler) {
  onUnauthorized = fn
}

const STATUS_TEXT: Record<number, string> = {
  400: '请求有误',
  401: '未登录或登录已过期，请重新登录',
  403: '没有权限执行此操作',
  404: '请求的资源不存在',
  409: '数据冲突',
  413: '文件过大',
  422: '提交的数据不符合要求',
  429: '操作过于频繁，请稍后再试',
  500: '服务器内部错误',
  502: '服务暂时不可用',
  503: '服务暂时不可用',
}

async function readProblem(res: Response): Promise<Problem> {
  const ct = res.headers.get('content-type') || ''
  let p: Problem = {}
  if (ct.includes('json')) {
    try {
      p = (await res.json()) as Problem
    } catch {
      p = {}
    }
  }
  if (!p.detail) p.detail = p.title || STATUS_TEXT[res.status] || `请求失败（HTTP ${res.status}）`
  if (!p.request_id) p.request_id = res.headers.get('x-request-id') || undefined
  p.status ??= res.status
  return p
}

export function showProblem(p: Problem) {
  const lines = [h('div', { class: 'problem-detail' }, p.detail)]
  for (const e of p.errors ?? []) {
    lines.push(h('div', { class: 'problem-field' }, e.field ? `${e.field}：${e.message}` : e.message))
  }
  if (p.request_id) lines.push(h('div', { class: 'problem-rid' }, `请求编号：${p.request_id}`))
  ElMessage.closeAll() // one toast at a time (see main.ts)
  ElMessage({ type: 'error', message: h('div', lines), duration: 6000, showClose: true })
}

let redirecting = false

async function send(method: string, path: string, body: unknown, opts: RequestOptions): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  let payload: BodyInit | undefined
  if (body instanceof FormData) {
    payload = body
  } else if (body instanceof Blob) {
    // A file as the body itself (a visit photo): its own type.
    headers['Content-Type'] = body.type || 'application/octet-stream'
    payload = body
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json'
    payload = JSON.stringify(body)
  }
  let res: Response
  try {
    res = await fetch(API_BASE + path, { method, headers, body: payload, credentials: 'same-origin', signal: opts.signal })
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e
    const p: Problem = { status: 0, detail: '网络错误，无法连接服务器' }
    if (!opts.silent) showProblem(p)
    throw new ApiError(0, p)
  }
  if (!res.ok) {
    const p = await readProblem(res)
    if (res.status === 401 && !opts.noAuthRedirect) {
      if (!redirecting) {
        redirecting = true
        showProblem(p)
        onUnauthorized()
        setTimeout(() => (redirecting = false), 1000)
      }
    } else if (!opts.silent) {
      showProblem(p)
    }
    throw new ApiError(res.status, p)
  }
  return res
}

export async function api<T = unknown>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  const res = await send(method, path, body, opts)
  if (res.status === 204) return undefined as T
  const ct = res.headers.get('content-type') || ''
  if (!ct.includes('json')) return undefined as T
  return (await res.json()) as T
}

export const get = <T>(path: string, opts?: RequestOptions) => api<T>('GET', path, undefined, opts)
export const post = <T>(path: string, body?: unknown, opts?: RequestOptions) => api<T>('POST', path, body, opts)
export const patch = <T>(path: string, body?: unknown, opts?: RequestOptions) => api<T>('PATCH', path, body, opts)
export const put = <T>(path: string, body?: unknown, opts?: RequestOptions) => api<T>('PUT', path, body, opts)

function filenameFrom(res: Response, fallback: string): string {
  const cd = res.headers.get('content-disposition') || ''
  const star = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(cd)
  if (star) {
    try {
      return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ''))
    } catch {
      /* fall through */
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/.exec(cd)
  return plain ? plain[1].trim() : fallback
}

/** Fetch a file (GET, or POST with a JSON body) and hand it to the browser as a download. */
export async function download(method: 'GET' | 'POST', path: string, fallbackName: string, body?: unknown): Promise<string> {
  const res = await send(method, path, body, {})
  const blob = await res.blob()
  const name = filenameFrom(res, fallbackName)
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = name
  a.style.display = 'none'
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 30_000)
  return name
}
