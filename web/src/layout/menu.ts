import type { Component } from 'vue'
import { Bell, DataLine, Cpu, Document, Files, House, List, Money, OfficeBuilding, Sort, Tickets, Upload, User, UserFilled, Van } from '@element-plus/icons-vue'

export interface MenuItem {
  path: string
  title: string
  icon: Component
  /** Permission the item needs, or any one of a list (empty: every account); the server checks it again on every call. */
  perm: string | string[]
  /** true: only for an account bound to one organisation; false: never for one. */
  bound?: boolean
}

export const MENU: MenuItem[] = [
  { path: '/', title: '工作台', icon: House, perm: '' },
  { path: '/elders', title: '老年人档案', icon: Files, perm: 'registry.read' },
  { path: '/import', title: '批量导入', icon: Upload, perm: 'registry.import' },
  { path: '/assessments/due', title: '评估任务', icon: List, perm: 'assessment.record' },
  { path: '/assessments/import', title: '评估导入', icon: Upload, perm: 'assessment.record' },
  { path: '/catalog', title: '服务目录', icon: Tickets, perm: 'catalog.manage' },
  { path: '/orgs', title: '服务机构', icon: OfficeBuilding, perm: 'aggregates.read', bound: false },
  { path: '/my-org', title: '本机构', icon: OfficeBuilding, perm: 'institution.manage', bound: true },
  { path: '/admission-queue', title: '入住轮候', icon: Sort, perm: 'institution.manage', bound: false },
  { path: '/emergency', title: '接警台', icon: Bell, perm: 'emergency.handle', bound: false },
  { path: '/care-visits', title: '探访关爱', icon: UserFilled, perm: 'care_visit.record', bound: false },
  { path: '/devices', title: '呼叫设备', icon: Cpu, perm: 'emergency.supervise', bound: false },
  { path: '/service-orders', title: '居家服务', icon: Van, perm: 'home_service.manage', bound: false },
  { path: '/home-settlements', title: '服务结算', icon: Money, perm: 'home_service.manage', bound: false },
  { path: '/bed-claims', title: '床位补贴', icon: Money, perm: ['aggregates.read', 'institution.manage'] },
  { path: '/indicators', title: '重点指标', icon: DataLine, perm: 'aggregates.read' },
  { path: '/audit', title: '审计日志', icon: Document, perm: 'audit.read' },
  { path: '/users', title: '用户管理', icon: User, perm: 'users.manage' },
]
