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

  async function probe(): Promise<Me | null> {
    try {
      me.value = await get<Me>('/me', { silent: true, noAuthRedirect: true })
    } catch (e) {
      if (!(e instanceof ApiError)) throw e
      me.value = null
    } finally {
      probed.value = true
    }
    return me.value
  }

  function setMe(m: Me) {
    me.value = m
    probed.value = true
  }

  /** Forget everything that belongs to the previous user. */
  function clear() {
    me.value = null
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
