import { defineStore } from 'pinia'
import { ref } from 'vue'
import { get } from '../api/http'
import type { RegionNode } from '../api/types'

/** The user's region subtree, fetched once per session. */
export const useRegions = defineStore('regions', () => {
  const tree = ref<RegionNode[]>([])
  const loaded = ref(false)
  let pending: Promise<void> | null = null

  function load(force = false): Promise<void> {
    if (loaded.value && !force) return Promise.resolve()
    if (!pending) {
      pending = get<RegionNode[]>('/regions/tree')
        .then((t) => {
          tree.value = t ?? []
          loaded.value = true
        })
        .finally(() => (pending = null))
    }
    return pending
  }

  function nameOf(code: string | null | undefined): string | undefined {
    if (!code) return undefined
    const stack = [...tree.value]
    while (stack.length) {
      const n = stack.pop()!
      if (n.code === code) return n.name
      if (n.children) stack.push(...n.children)
    }
    return undefined
  }

  function reset() {
    tree.value = []
    loaded.value = false
  }

  return { tree, loaded, load, nameOf, reset }
})

