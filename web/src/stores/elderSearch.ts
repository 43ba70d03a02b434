import { defineStore } from 'pinia'
import { reactive, ref } from 'vue'
import type { ElderSearch } from '../api/types'

export interface SearchForm {
  name: string
  age_min: number | undefined
  age_max: number | undefined
  living_status: string
  economic_status: string
  status: string
  ability_level: string
}

export const emptyForm = (): SearchForm => ({
  name: '',
  age_min: undefined,
  age_max: undefined,
  living_status: '',
  economic_status: '',
  status: '',
  ability_level: '',
})

/**
 * The registry search is kept in memory (never in the URL: names are personal information), so
 * coming back from a detail page shows the same list.
 */
export const useElderSearch = defineStore('elderSearch', () => {
  const form = reactive<SearchForm>(emptyForm())
  const regionCode = ref<string>('')
  const regionName = ref<string>('')
  const page = ref(1)
  const pageSize = ref(20)

  function body(): ElderSearch {
    const b: ElderSearch = { page: page.value, page_size: pageSize.value }
    const name = form.name.trim()
    if (name) b.name = name
    if (regionCode.value) b.region_code = regionCode.value
    if (form.age_min !== undefined && form.age_min !== null) b.age_min = form.age_min
    if (form.age_max !== undefined && form.age_max !== null) b.age_max = form.age_max
    if (form.living_status) b.living_status = form.living_status
    if (form.economic_status) b.economic_status = form.economic_status
    if (form.status) b.status = form.status as ElderSearch['status']
    if (form.ability_level) b.ability_level = form.ability_level
    return b
  }

  function reset() {
    Object.assign(form, emptyForm())
    page.value = 1
  }

  return { form, regionCode, regionName, page, pageSize, body, reset }
})
