import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { ApiError, get, post } from '../api/http'
import type { Me } from '../api/types'
import { useElderSearch } from './elderSearch'
import { useRegions } from './regions'

export const useAuth = defineStore('auth', () => {
  const me = ref<Me | null>(null)
  /** Whether GET /me has been tried once since page load. */
  const probed = ref(false)

  const loggedIn = computed(() => me.value !== null)
  /** Holds the permission, or any one of a list of them. */
  const can = (perm: string | string[]) =>
    (Array.isArray(perm) ? perm : [perm]).some((p) => !!me.value?.permissions.includes(p))

  // A caregiver (or a village worker) opens her visits where there may be no signal: who she is, from her last page
  // load, stands in when the server cannot be reached (the server still checks every request).
  const FIELD_KEY = 'yiyang.me.field'
  const keepField = (m: Me | null) => {
    const field = m?.permissions.includes('home_service.visit') || (m?.permissions.includes('care_visit.record') && !m.permissions.includes('care_visit.manage'))
    if (field) localStorage.setItem(FIELD_KEY, JSON.stringify(m))
    else localStorage.removeItem(FIELD_KEY)
  }

  async function probe(): Promise<Me | null> {
    try {
      me.value = await get<Me>('/me', { silent: true, noAuthRedirect: true })
      keepField(me.value)
    } catch (e) {
      if (!(e instanceof ApiError)) throw e
      const kept = localStorage.getItem(FIELD_KEY)
      me.value = e.status === 0 && kept ? (JSON.parse(kept) as Me) : null
    } finally {
      probed.value = true
    }
    return me.value
  }

  function setMe(m: Me) {
    me.value = m
    keepField(m)
    probed.value = true
  }

  /** Forget everything that belongs to the previous user. */
  function clear() {
    me.value = null
    keepField(null)
    useRegions().reset()
    const search = useElderSearch()
    search.reset()
    search.regionCode = ''
    search.regionName = ''
  }

  async function logout() {
    try {
      await post('/auth/logout', undefined, { silent: true, noAuthRedirect: true })
    } catch {
      /* the session may already be gone; log out locally anyway */
    }
    clear()
  }

  return { me, probed, loggedIn, can, probe, setMe, clear, logout }
})
